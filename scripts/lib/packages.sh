# Sourced by the scripts: `ensure_packages NAME...` installs, from Debian's
# archive, whichever of these tools is missing, by the name of what it gives:
#   postgres  redis  chromium  wrk  docker  debootstrap  podman  qemu  registry
ensure_packages() {
  local need=() tool
  for tool in "$@"; do
    case "$tool" in
      postgres) compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || need+=(postgresql) ;;
      redis) command -v redis-server >/dev/null || need+=(redis-server) ;;
      chromium)
        [ -x /usr/bin/chromium ] || need+=(chromium)
        command -v chromedriver >/dev/null || need+=(chromium-driver)
        ;;
      wrk) command -v wrk >/dev/null || need+=(wrk) ;;
      docker) command -v dockerd >/dev/null || need+=(docker.io) ;;
      debootstrap) command -v debootstrap >/dev/null || need+=(debootstrap) ;;
      qemu) [ -x /usr/libexec/qemu-binfmt/aarch64-binfmt-P ] || need+=(qemu-user-static) ;;
      registry) command -v docker-registry >/dev/null || need+=(docker-registry) ;;
      podman)
        command -v podman >/dev/null || need+=(podman)
        command -v catatonit >/dev/null || need+=(catatonit)
        [ -x /usr/lib/cni/dnsname ] || need+=(golang-github-containernetworking-plugin-dnsname)
        ;;
      *) echo "ensure_packages: unknown tool $tool" >&2; return 1 ;;
    esac
  done
  if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
}
