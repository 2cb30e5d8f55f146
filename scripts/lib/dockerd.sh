# Sourced by scripts/test-deploy.sh: a throwaway Docker engine inside a
# network namespace of its own (the machine's rule: containers live only in
# namespaces the test made). Everything it makes is under $DOCKERD_DIR and is
# removed by `dockerd_stop`, which kills by PID.
#   dockerd_start NAME DIR   start; sets DOCKER_HOST and NETNS
#   in_netns CMD...          run a command inside the namespace (curl, ...)
#   dockerd_stop             stop the engine, its containers, the namespace

dockerd_start() {
  NETNS="$1"
  DOCKERD_DIR="$2"
  # What a killed run left there: start cold and without its gigabytes.
  dockerd_unmount
  rm -rf "$DOCKERD_DIR"
  mkdir -p "$DOCKERD_DIR"
  ip netns add "$NETNS"
  ip -n "$NETNS" link set lo up
  nsenter --net="/run/netns/$NETNS" dockerd \
    --data-root "$DOCKERD_DIR/data" --exec-root "$DOCKERD_DIR/exec" \
    --pidfile "$DOCKERD_DIR/dockerd.pid" -H "unix://$DOCKERD_DIR/docker.sock" \
    --containerd-namespace "yelb-$NETNS" --containerd-plugins-namespace "yelb-$NETNS-plugins" \
    >"$DOCKERD_DIR/dockerd.log" 2>&1 </dev/null &
  DOCKERD_PID=$!
  export DOCKER_HOST="unix://$DOCKERD_DIR/docker.sock"
  local i
  for i in $(seq 1 100); do
    docker version >/dev/null 2>&1 && return 0
    kill -0 "$DOCKERD_PID" 2>/dev/null || break
    sleep 0.2
  done
  echo "dockerd did not start; its log:" >&2
  tail -n 30 "$DOCKERD_DIR/dockerd.log" >&2
  return 1
}

in_netns() {
  nsenter --net="/run/netns/$NETNS" "$@"
}

dockerd_stop() {
  if [ -n "${DOCKERD_PID:-}" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    docker swarm leave --force >/dev/null 2>&1 || true
    docker ps -aq 2>/dev/null | xargs -r docker rm -f >/dev/null 2>&1 || true
    kill "$DOCKERD_PID" 2>/dev/null || true
    local i
    for i in $(seq 1 100); do
      kill -0 "$DOCKERD_PID" 2>/dev/null || break
      sleep 0.2
    done
    kill -9 "$DOCKERD_PID" 2>/dev/null || true
  fi
  dockerd_unmount
  if [ -n "${NETNS:-}" ]; then
    ip netns del "$NETNS" 2>/dev/null || true
  fi
}

# Whatever the engine left mounted under its folders (Swarm's network
# namespaces, overlay layers), deepest first.
dockerd_unmount() {
  [ -n "${DOCKERD_DIR:-}" ] || return 0
  awk -v dir="$DOCKERD_DIR/" 'index($2, dir) == 1 {print $2}' /proc/mounts | sort -r | while read -r mount; do
    umount -l "$mount" 2>/dev/null || true
  done
}
