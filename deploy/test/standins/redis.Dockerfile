# Test stand-in tagged redis:7-bookworm (scripts/test-deploy.sh): Debian's
# redis-server from the locally made base image. Real deployments pull the
# official image.
FROM yelb-test/rootfs:bookworm
RUN mkdir -p /data /usr/local/etc/redis
WORKDIR /data
CMD ["redis-server"]
