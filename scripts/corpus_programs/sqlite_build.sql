-- Corpus source: sqlite3 building and querying an in-memory database (no fixed end).
-- A large page cache keeps the B-tree pages, the index build's sorter and the rows in anonymous
-- memory; the final recursive query runs until the capture ends it.
PRAGMA cache_size = -400000;
PRAGMA temp_store = MEMORY;
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, city TEXT, amount REAL, qty INTEGER, note TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 600000)
INSERT INTO orders
SELECT i,
       'customer-' || (abs(random()) % 50000),
       CASE abs(random()) % 6 WHEN 0 THEN 'Berlin' WHEN 1 THEN 'Austin' WHEN 2 THEN 'Osaka'
            WHEN 3 THEN 'Lyon' WHEN 4 THEN 'Porto' ELSE 'Hanoi' END,
       round((abs(random()) % 100000) / 100.0, 2),
       abs(random()) % 20,
       'order ' || i || ' shipped via ' || (CASE i % 3 WHEN 0 THEN 'air' WHEN 1 THEN 'sea' ELSE 'road' END)
FROM n;
CREATE INDEX orders_city ON orders(city, amount);
CREATE INDEX orders_customer ON orders(customer);
CREATE TABLE totals AS SELECT customer, city, sum(amount) AS total, count(*) AS n FROM orders GROUP BY customer, city;
SELECT 'ready';
WITH RECURSIVE spin(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM spin WHERE i < 1000000000000)
SELECT max(i) FROM spin;
