-- The original Yelb schema and seed rows (as the mreferre/yelb-db image
-- creates them), run once by the Postgres image on an empty data directory.
-- The original app server never creates them itself; ours would, but this
-- keeps the original app server working against this database too.
CREATE TABLE IF NOT EXISTS restaurants (name char(30) PRIMARY KEY, count integer);
INSERT INTO restaurants (name, count)
VALUES ('outback', 0), ('bucadibeppo', 0), ('chipotle', 0), ('ihop', 0)
ON CONFLICT (name) DO NOTHING;
