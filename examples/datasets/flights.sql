-- flights: a small example dataset for `meridian demo --dataset flights`.
-- Airports in three regions and the flights between them; try
--   SELECT a.region, count(*) FROM flight f JOIN airport a ON a.code = f.origin GROUP BY 1;
CREATE TABLE airport (
    code    TEXT PRIMARY KEY,
    city    TEXT NOT NULL,
    region  TEXT NOT NULL
);
CREATE TABLE flight (
    id       INTEGER PRIMARY KEY,
    origin   TEXT NOT NULL REFERENCES airport(code),
    dest     TEXT NOT NULL REFERENCES airport(code),
    departs  TEXT NOT NULL,
    seats    INTEGER NOT NULL CHECK (seats > 0),
    price    REAL NOT NULL
);
CREATE INDEX flight_origin ON flight(origin, departs);

INSERT INTO airport VALUES
    ('JFK', 'New York', 'us-east'),
    ('IAD', 'Washington', 'us-east'),
    ('SFO', 'San Francisco', 'us-west'),
    ('SEA', 'Seattle', 'us-west'),
    ('LHR', 'London', 'europe-west'),
    ('CDG', 'Paris', 'europe-west');

INSERT INTO flight(origin, dest, departs, seats, price) VALUES
    ('JFK', 'LHR', '2026-12-01 19:00', 180, 612.00),
    ('JFK', 'SFO', '2026-12-01 08:30', 160, 329.50),
    ('IAD', 'CDG', '2026-12-01 17:45', 200, 587.25),
    ('SFO', 'SEA', '2026-12-01 07:15', 120, 149.00),
    ('SFO', 'LHR', '2026-12-01 16:20', 220, 845.00),
    ('SEA', 'JFK', '2026-12-02 06:00', 150, 301.75),
    ('LHR', 'JFK', '2026-12-02 11:00', 180, 598.00),
    ('LHR', 'CDG', '2026-12-02 09:10', 140, 118.40),
    ('CDG', 'IAD', '2026-12-02 10:35', 200, 560.00),
    ('CDG', 'SFO', '2026-12-02 13:05', 210, 799.90);
