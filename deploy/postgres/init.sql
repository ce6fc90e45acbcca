-- One database per service (DESIGN.md: facts live in SQL, one database per
-- service). The services create their tables with their own migrations.
CREATE DATABASE ingest;
CREATE DATABASE ledger;
CREATE DATABASE segmentation;
CREATE DATABASE feedback;
