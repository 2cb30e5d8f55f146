# Test stand-in tagged postgres:15-bookworm (scripts/test-deploy.sh): Debian's
# postgresql-15 from the locally made base image, behind an entrypoint with
# the official image's contract. Real deployments pull the official image.
FROM yelb-test/rootfs:bookworm
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
# UID and GID 999, as in the official image.
RUN groupmod -g 999 postgres && usermod -u 999 -g 999 postgres \
 && mkdir -p /docker-entrypoint-initdb.d /var/lib/postgresql/data /run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /run/postgresql
USER 999:999
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
