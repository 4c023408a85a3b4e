-- Roles for pgqueue on a PostgreSQL where it is not superuser (RDS, Cloud SQL, Azure, and the
-- compose stack, whose postgres image runs this once, as its admin, in the pgqueue database).
--
-- pgqueue: owns the schema pgqueue; runs the migrations and the workers. Needs nothing else:
--          no superuser, no CREATEDB, no CREATEROLE, no extension (gen_random_uuid is built in).
-- pgqueue_reader: dashboards (Grafana); reads pgqueue's tables and views, writes nothing.
-- Change the passwords, or use your platform's IAM authentication.

CREATE ROLE pgqueue LOGIN PASSWORD 'pgqueue' NOSUPERUSER NOCREATEDB NOCREATEROLE;
CREATE ROLE pgqueue_reader LOGIN PASSWORD 'pgqueue_reader' NOSUPERUSER NOCREATEDB NOCREATEROLE;

GRANT CONNECT ON DATABASE pgqueue TO pgqueue, pgqueue_reader;
CREATE SCHEMA pgqueue AUTHORIZATION pgqueue;

GRANT USAGE ON SCHEMA pgqueue TO pgqueue_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE pgqueue IN SCHEMA pgqueue GRANT SELECT ON TABLES TO pgqueue_reader;

-- Unqualified names (the dashboard's queries, psql sessions) find pgqueue's tables first.
ALTER ROLE pgqueue SET search_path = pgqueue, public;
ALTER ROLE pgqueue_reader SET search_path = pgqueue, public;
