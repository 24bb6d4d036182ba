-- Per-key browser origin allowlist (issue 12): a JSON array of exact
-- origins (`https://app.example.com`) and subdomain patterns
-- (`https://*.example.com`); empty means any origin (or none).
ALTER TABLE keys ADD COLUMN allowed_origins JSONB NOT NULL DEFAULT '[]'::jsonb;
