# Test stand-in tagged postgres:15-bookworm (scripts/test-deploy.sh): Debian's
# postgresql-15 from the locally made base image, behind an entrypoint with
# the official image's contract. Real deployments pull the official image.
FROM yelb-test/rootfs:bookworm
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN mkdir -p /docker-entrypoint-initdb.d
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
