-- Vigil schema 4 (SQLite): each person's fall-detector sensitivity, an
-- offset in log-odds within the bounds the model's evaluation measured
-- (0 = the model's operating point). Care plans differ: a resident who
-- lies down heavily gets a lower value, one who falls softly a higher.
ALTER TABLE people ADD COLUMN fall_sensitivity REAL NOT NULL DEFAULT 0;
