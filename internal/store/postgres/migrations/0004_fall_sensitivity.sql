-- Vigil schema 4 (PostgreSQL): each person's fall-detector sensitivity, an
-- offset in log-odds within the bounds the model's evaluation measured
-- (0 = the model's operating point).
ALTER TABLE people ADD COLUMN fall_sensitivity double precision NOT NULL DEFAULT 0;
