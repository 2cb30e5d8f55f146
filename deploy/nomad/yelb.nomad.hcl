# Yelb on HashiCorp Nomad (docker driver, Nomad's own service discovery):
#   nomad job run deploy/nomad/yelb.nomad.hcl
# then open http://<client running yelb-ui>:8080/. The images must be on the
# clients (or in a registry: set `registry`). The database needs a host volume
# named yelb-db-data in the client configuration (any owner: Postgres
# initialises a subdirectory of it).
#
# Services find each other through Nomad's own catalogue (no Consul). The
# templates below re-render, and restart their task, whenever the catalogue
# changes; until the database and Redis are registered the app server has no
# address for them and, with RACK_ENV=custom, refuses to start (exit 2)
# instead of running on an in-memory store, so three replicas never count
# three different tallies. The UI gets every app server, comma-separated, and
# takes them in turn, so the spread panel shows them all.

variable "registry" {
  type    = string
  default = ""
}

# The crate version (Cargo.toml): Nomad's docker driver always pulls a
# `latest` tag, so a versioned tag is also what lets local images be used.
variable "tag" {
  type    = string
  default = "0.1.0"
}

# Stage control's token (/console): empty, off. Pass one without committing
# it: nomad job run -var "admin_token=$(openssl rand -hex 16)" ...
variable "admin_token" {
  type      = string
  default   = ""
  sensitive = true
}

# The QR code's URL (e.g. http://<the UI client's LAN address>:8080/);
# empty, the URL the page was loaded from.
variable "public_url" {
  type    = string
  default = ""
}

variable "db_password" {
  type    = string
  default = "postgres_password"
}

job "yelb" {
  type = "service"

  update {
    max_parallel     = 1
    health_check     = "checks"
    min_healthy_time = "5s"
    healthy_deadline = "2m"
    auto_revert      = true
  }

  group "yelb-db" {
    count = 1

    network {
      port "postgres" {
        to = 5432
      }
    }

    volume "data" {
      type   = "host"
      source = "yelb-db-data"
    }

    service {
      name     = "yelb-db"
      port     = "postgres"
      provider = "nomad"

      check {
        type     = "tcp"
        interval = "5s"
        timeout  = "2s"
      }
    }

    task "yelb-db" {
      driver = "docker"

      config {
        image = "${var.registry}yelb-db:${var.tag}"
        ports = ["postgres"]
      }

      env {
        POSTGRES_PASSWORD = var.db_password
        # A subdirectory: initdb refuses a mount point it does not own (a
        # host volume is usually root's), and a lost+found in it.
        PGDATA = "/var/lib/postgresql/data/pgdata"
      }

      volume_mount {
        volume      = "data"
        destination = "/var/lib/postgresql/data"
      }

      resources {
        cpu    = 200
        memory = 512
      }
    }
  }

  group "redis-server" {
    count = 1

    network {
      port "redis" {
        to = 6379
      }
    }

    service {
      name     = "redis-server"
      port     = "redis"
      provider = "nomad"

      check {
        type     = "tcp"
        interval = "5s"
        timeout  = "2s"
      }
    }

    task "redis-server" {
      driver = "docker"

      config {
        image = "${var.registry}yelb-cache:${var.tag}"
        ports = ["redis"]
      }

      resources {
        cpu    = 100
        memory = 128
      }
    }
  }

  group "yelb-appserver" {
    count = 3

    # Replicas on different clients where there are several.
    spread {
      attribute = "${node.unique.id}"
    }

    network {
      port "http" {
        to = 4567
      }
    }

    service {
      name     = "yelb-appserver"
      port     = "http"
      provider = "nomad"

      check {
        type     = "http"
        path     = "/readyz"
        interval = "5s"
        timeout  = "2s"
      }
    }

    task "yelb-appserver" {
      driver = "docker"

      config {
        image     = "${var.registry}yelb-appserver:${var.tag}"
        ports     = ["http"]
        readonly_rootfs = true
      }

      # Nomad's service catalogue instead of the original's fixed host names.
      template {
        destination = "local/backends.env"
        env         = true
        data        = <<-EOT
          {{ range nomadService "yelb-db" }}YELB_DB_HOST={{ .Address }}
          YELB_DB_PORT={{ .Port }}{{ end }}
          {{ range nomadService "redis-server" }}YELB_REDIS_URL=redis://{{ .Address }}:{{ .Port }}/{{ end }}
        EOT
      }

      env {
        # With the template empty (nothing registered yet) this makes the
        # start fail, naming YELB_DB_SERVER_ENDPOINT, rather than fall back
        # to memory. The template's YELB_DB_HOST/YELB_REDIS_URL win over it.
        RACK_ENV            = "custom"
        YELB_DB_PASSWORD    = var.db_password
        YELB_SHUTDOWN_DELAY = "5"
        YELB_ADMIN_TOKEN    = var.admin_token
        # The UIs, whose X-Forwarded-For names the phone to throttle.
        YELB_TRUSTED_PROXIES = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,fc00::/7"
        # Where each allocation runs, for the spread panel.
        YELB_NODE = "${node.unique.name}"
        YELB_ZONE = "${node.datacenter}"
      }

      resources {
        cpu    = 200
        memory = 128
      }
    }
  }

  group "yelb-ui" {
    count = 1

    network {
      port "http" {
        static = 8080
        to     = 8080
      }
    }

    service {
      name     = "yelb-ui"
      port     = "http"
      provider = "nomad"

      check {
        type     = "http"
        path     = "/readyz"
        interval = "5s"
        timeout  = "2s"
      }
    }

    task "yelb-ui" {
      driver = "docker"

      config {
        image           = "${var.registry}yelb-ui:${var.tag}"
        ports           = ["http"]
        readonly_rootfs = true
      }

      env {
        YELB_UI_PUBLIC_URL = var.public_url
      }

      # Every app server in the catalogue, taken in turn by the UI.
      template {
        destination = "local/appserver.env"
        env         = true
        data        = <<-EOT
          YELB_APPSERVER_ENDPOINT={{ range $i, $s := nomadService "yelb-appserver" }}{{ if $i }},{{ end }}http://{{ $s.Address }}:{{ $s.Port }}{{ end }}
        EOT
      }

      resources {
        cpu    = 200
        memory = 192
      }
    }
  }
}
