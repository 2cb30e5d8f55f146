# Test stand-in tagged redis:7-bookworm (scripts/test-deploy.sh): Debian's
# redis-server from the locally made base image. Real deployments pull the
# official image.
FROM yelb-test/rootfs:bookworm
# UID and GID 999, as in the official image.
RUN groupmod -g 999 redis && usermod -u 999 -g 999 redis \
 && mkdir -p /data /usr/local/etc/redis && chown redis:redis /data
USER 999:999
WORKDIR /data
CMD ["redis-server"]
