-- Demo datastore for the retention rules in ../rules/.
--
-- Run with the sqlite3 command-line shell on an empty file:
--   sqlite3 -bail out/app.db < schema-and-data.sql
--
-- Every timestamp is computed from 'now', so the data has the same shape whenever it is
-- generated: about seven years of history, part of it past each rule's retention period.
-- Row counts are exact; which rows are due varies a little from one run to the next because
-- ages are drawn with random(). The shares below are what each rule's max_fraction allows for.
--
--   table                     rows    anchor (format)                         due on first run
--   cookies                   5000    consent_given_at (unix seconds)         ~40%
--   connection_logs          20000    connected_at (unix seconds)             ~35%
--   error_logs                3000    logged_at (ISO 8601 text)               ~45%
--   accounts                  2000    last_seen_at (unix milliseconds)        ~12%
--   account_sessions         ~5970    started_at (unix milliseconds)          ~85%
--   events                     200    ended_at (unix seconds)
--   event_participation_logs  6000    events.ended_at via event_id            ~98%
--   videos                    1000    reviewed_at (ISO 8601 text), rejected   ~19%
--   prospects                  500    collected_at (ISO 8601 with millis)     ~100%
--   support_tickets           1000    created_at (SQLite CURRENT_TIMESTAMP)   kept
--
-- A few anchors are NULL (never expire, reported as undated) and two are text that is no
-- timestamp (never touched, reported as unreadable). IPv6 addresses use the documentation
-- prefix 2001:db8::/32; names, emails and phone numbers are made up.

PRAGMA foreign_keys = ON;

BEGIN;

-- Schema ------------------------------------------------------------------------------------

CREATE TABLE accounts (
  id            INTEGER PRIMARY KEY,
  email         TEXT NOT NULL,
  display_name  TEXT,
  phone         TEXT,
  birth_date    TEXT,               -- 'YYYY-MM-DD'
  country       TEXT,
  last_ip       TEXT,
  created_at    INTEGER NOT NULL,   -- unix milliseconds
  last_seen_at  INTEGER,            -- unix milliseconds; NULL: never signed in
  anonymized_at INTEGER             -- set by retentiond when it anonymizes the account
);
CREATE INDEX accounts_last_seen_at ON accounts (last_seen_at);

CREATE TABLE account_sessions (
  id         INTEGER PRIMARY KEY,
  account_id INTEGER NOT NULL REFERENCES accounts (id),
  started_at INTEGER NOT NULL,      -- unix milliseconds
  ip         TEXT,
  user_agent TEXT
);
CREATE INDEX account_sessions_account_id ON account_sessions (account_id);
CREATE INDEX account_sessions_started_at ON account_sessions (started_at);

CREATE TABLE cookies (
  id               INTEGER PRIMARY KEY,
  visitor_id       TEXT NOT NULL,
  account_id       INTEGER REFERENCES accounts (id),   -- NULL for visitors not signed in
  category         TEXT NOT NULL,
  consent_given_at INTEGER           -- unix seconds; NULL: imported without a consent date
);
CREATE INDEX cookies_consent_given_at ON cookies (consent_given_at);

CREATE TABLE connection_logs (
  id           INTEGER PRIMARY KEY,
  account_id   INTEGER NOT NULL REFERENCES accounts (id),
  ip           TEXT NOT NULL,
  user_agent   TEXT,
  connected_at INTEGER NOT NULL     -- unix seconds
);
CREATE INDEX connection_logs_connected_at ON connection_logs (connected_at);

CREATE TABLE error_logs (
  id         INTEGER PRIMARY KEY,
  account_id INTEGER REFERENCES accounts (id),
  level      TEXT NOT NULL,
  source     TEXT NOT NULL,
  message    TEXT NOT NULL,
  ip         TEXT,
  logged_at  TEXT                   -- ISO 8601, '2025-03-04T10:11:12Z'
);
CREATE INDEX error_logs_logged_at ON error_logs (logged_at);

CREATE TABLE events (
  id         INTEGER PRIMARY KEY,
  name       TEXT NOT NULL,
  started_at INTEGER NOT NULL,      -- unix seconds
  ended_at   INTEGER                -- unix seconds; NULL while the event runs
);
CREATE INDEX events_ended_at ON events (ended_at);

CREATE TABLE event_participation_logs (
  id                  INTEGER PRIMARY KEY,
  event_id            INTEGER NOT NULL REFERENCES events (id),
  account_id          INTEGER REFERENCES accounts (id),
  ip                  TEXT NOT NULL,
  participation_count INTEGER NOT NULL,
  logged_at           INTEGER NOT NULL  -- unix seconds
);
CREATE INDEX event_participation_logs_event_id ON event_participation_logs (event_id);

CREATE TABLE videos (
  id           INTEGER PRIMARY KEY,
  account_id   INTEGER NOT NULL REFERENCES accounts (id),
  title        TEXT NOT NULL,
  storage_path TEXT NOT NULL,       -- relative to the media root
  status       TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
  uploaded_at  TEXT NOT NULL,       -- ISO 8601
  reviewed_at  TEXT                 -- ISO 8601; NULL while pending
);
CREATE INDEX videos_reviewed_at ON videos (reviewed_at);
CREATE INDEX videos_account_id ON videos (account_id);
CREATE INDEX videos_storage_path ON videos (storage_path);

CREATE TABLE prospects (
  id           INTEGER PRIMARY KEY,
  first_name   TEXT NOT NULL,
  last_name    TEXT NOT NULL,
  email        TEXT NOT NULL,
  company      TEXT,
  country      TEXT,
  phone        TEXT,
  interest     TEXT,
  collected_at TEXT NOT NULL        -- ISO 8601 from the web form, '2025-03-04T10:11:12.345Z'
);
CREATE INDEX prospects_collected_at ON prospects (collected_at);

CREATE TABLE support_tickets (
  id         INTEGER PRIMARY KEY,
  account_id INTEGER REFERENCES accounts (id),
  subject    TEXT NOT NULL,
  priority   TEXT NOT NULL,
  status     TEXT NOT NULL,
  created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,   -- 'YYYY-MM-DD HH:MM:SS', UTC
  closed_at  TEXT
);
CREATE INDEX support_tickets_created_at ON support_tickets (created_at);
CREATE INDEX support_tickets_account_id ON support_tickets (account_id);

-- Generators (temporary, gone when the shell exits) -----------------------------------------

CREATE TEMP TABLE clock AS SELECT CAST(strftime('%s', 'now') AS INTEGER) AS now_s;

CREATE TEMP TABLE seq (n INTEGER PRIMARY KEY);
WITH RECURSIVE s (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 20000)
INSERT INTO seq SELECT n FROM s;

CREATE TEMP TABLE first_names (i INTEGER PRIMARY KEY, name TEXT);
INSERT INTO first_names (name) VALUES
  ('Ana'), ('Bram'), ('Chen'), ('Dana'), ('Emil'), ('Fatima'), ('Goran'), ('Hana'),
  ('Ivo'), ('Jana'), ('Kofi'), ('Lea'), ('Mateo'), ('Nora'), ('Omar'), ('Priya'),
  ('Quentin'), ('Rosa'), ('Sven'), ('Tara'), ('Umar'), ('Vera'), ('Wei'), ('Yara');

CREATE TEMP TABLE last_names (i INTEGER PRIMARY KEY, name TEXT);
INSERT INTO last_names (name) VALUES
  ('Almeida'), ('Berg'), ('Costa'), ('Dubois'), ('Eriksen'), ('Fischer'), ('Garcia'),
  ('Horvat'), ('Ito'), ('Jansen'), ('Kowalski'), ('Larsen'), ('Moreau'), ('Novak'),
  ('Okafor'), ('Petrov'), ('Rossi'), ('Schmidt'), ('Tanaka'), ('Weber');

CREATE TEMP TABLE countries (i INTEGER PRIMARY KEY, code TEXT, dial TEXT);
INSERT INTO countries (code, dial) VALUES
  ('DE', '49'), ('FR', '33'), ('NL', '31'), ('ES', '34'), ('IT', '39'), ('PL', '48'),
  ('SE', '46'), ('GB', '44'), ('US', '1'), ('BR', '55'), ('JP', '81'), ('IN', '91');

CREATE TEMP TABLE user_agents (i INTEGER PRIMARY KEY, ua TEXT);
INSERT INTO user_agents (ua) VALUES
  ('Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36'),
  ('Mozilla/5.0 (Macintosh; Intel Mac OS X 13_5) AppleWebKit/605.1.15 Version/16.6 Safari/605.1.15'),
  ('Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Firefox/115.0'),
  ('Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148'),
  ('Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/120.0 Mobile Safari/537.36'),
  ('AppClient/4.2.1 (Android 13)'),
  ('AppClient/4.3.0 (iOS 17.1)');

-- 20000 addresses drawn once: nine in ten IPv4, the rest IPv6 (documentation prefix). Each
-- table picks them through its own permutation of seq (7919 is prime to 20000).
CREATE TEMP TABLE ips AS
SELECT n AS i,
       CASE WHEN abs(random()) % 10 = 0
         THEN printf('2001:db8:%x:%x::%x', abs(random()) % 65536, abs(random()) % 65536,
                     1 + abs(random()) % 65535)
         ELSE printf('%d.%d.%d.%d', 11 + abs(random()) % 180, abs(random()) % 256,
                     abs(random()) % 256, 1 + abs(random()) % 254)
       END AS ip
FROM seq;

-- Accounts: 12% last seen more than five years ago (due for anonymization), 10 never signed in.
CREATE TEMP TABLE account_age AS
SELECT n AS id,
       CASE
         WHEN n % 200 = 0 THEN NULL
         WHEN abs(random()) % 100 < 12 THEN (1835 + abs(random()) % 720) * 86400
         ELSE abs(random()) % (1800 * 86400)
       END AS seen_ago_s,
       abs(random()) % (700 * 86400) AS active_for_s
FROM seq WHERE n <= 2000;

INSERT INTO accounts (id, email, display_name, phone, birth_date, country, last_ip, created_at,
                      last_seen_at)
SELECT a.id,
       lower(f.name) || '.' || lower(l.name) || a.id || '@'
         || CASE a.id % 4 WHEN 0 THEN 'example.com' WHEN 1 THEN 'example.org'
                          WHEN 2 THEN 'example.net' ELSE 'mail.example' END,
       f.name || ' ' || l.name,
       CASE WHEN abs(random()) % 10 < 3 THEN NULL
            ELSE '+' || c.dial || ' ' || printf('%03d %04d %03d', abs(random()) % 1000,
                                                abs(random()) % 10000, abs(random()) % 1000)
       END,
       CASE WHEN abs(random()) % 10 < 2 THEN NULL
            ELSE date('1950-01-01', '+' || (abs(random()) % (55 * 365)) || ' days')
       END,
       c.code,
       CASE WHEN a.seen_ago_s IS NULL THEN NULL ELSE x.ip END,
       (k.now_s - coalesce(a.seen_ago_s, 0) - a.active_for_s) * 1000 + abs(random()) % 1000,
       CASE WHEN a.seen_ago_s IS NULL THEN NULL
            ELSE (k.now_s - a.seen_ago_s) * 1000 + abs(random()) % 1000 END
FROM account_age a
JOIN clock k
JOIN first_names f ON f.i = 1 + a.id % 24
JOIN last_names l ON l.i = 1 + (a.id * 7 + a.id / 24) % 20
JOIN countries c ON c.i = 1 + (a.id * 5 + a.id / 12) % 12
JOIN ips x ON x.i = 1 + (a.id * 7919 + 1) % 20000;

-- Sessions: 6000 draws over the accounts, within 90 days before the account was last seen;
-- accounts that never signed in get none.
CREATE TEMP TABLE session_pick AS
SELECT n, 1 + abs(random()) % 2000 AS account_id FROM seq WHERE n <= 6000;

INSERT INTO account_sessions (account_id, started_at, ip, user_agent)
SELECT p.account_id,
       a.last_seen_at - abs(random()) % (90 * 86400 * 1000),
       x.ip,
       u.ua
FROM session_pick p
JOIN accounts a ON a.id = p.account_id
JOIN user_agents u ON u.i = 1 + p.n % 7
JOIN ips x ON x.i = 1 + (p.n * 7919 + 2) % 20000
WHERE a.last_seen_at IS NOT NULL
ORDER BY p.n;

-- Cookies: 60% consented within the last year, 40% one to three years ago; 15 without a date.
INSERT INTO cookies (visitor_id, account_id, category, consent_given_at)
SELECT lower(hex(randomblob(16))),
       CASE WHEN abs(random()) % 10 < 3 THEN 1 + abs(random()) % 2000 END,
       CASE n % 4 WHEN 0 THEN 'analytics' WHEN 1 THEN 'preferences' WHEN 2 THEN 'marketing'
                  ELSE 'functional' END,
       CASE
         WHEN n % 333 = 0 THEN NULL
         WHEN abs(random()) % 100 < 60 THEN k.now_s - abs(random()) % (355 * 86400)
         ELSE k.now_s - (370 * 86400 + abs(random()) % (725 * 86400))
       END
FROM seq JOIN clock k WHERE n <= 5000;

-- Connection logs: 65% within the last year, 35% one to seven years old.
INSERT INTO connection_logs (account_id, ip, user_agent, connected_at)
SELECT 1 + abs(random()) % 2000,
       x.ip,
       u.ua,
       CASE
         WHEN abs(random()) % 100 < 65 THEN k.now_s - abs(random()) % (355 * 86400)
         ELSE k.now_s - (370 * 86400 + abs(random()) % (2185 * 86400))
       END
FROM seq
JOIN clock k
JOIN user_agents u ON u.i = 1 + seq.n % 7
JOIN ips x ON x.i = 1 + (seq.n * 7919 + 3) % 20000
WHERE n <= 20000;

-- Error logs: 55% within 23 months, 45% two to seven years old; 5 undated; 2 written by a
-- client without a clock, unreadable and so never touched.
INSERT INTO error_logs (account_id, level, source, message, ip, logged_at)
SELECT CASE WHEN abs(random()) % 10 < 6 THEN 1 + abs(random()) % 2000 END,
       CASE WHEN n % 10 < 7 THEN 'error' WHEN n % 10 < 9 THEN 'warning' ELSE 'crash' END,
       CASE n % 5 WHEN 0 THEN 'web' WHEN 1 THEN 'api' WHEN 2 THEN 'app-android'
                  WHEN 3 THEN 'app-ios' ELSE 'firmware-upload' END,
       CASE n % 6
         WHEN 0 THEN 'request timed out after 30s'
         WHEN 1 THEN 'upload rejected: file exceeds 2 GiB'
         WHEN 2 THEN 'session token expired'
         WHEN 3 THEN 'null pointer in playback view'
         WHEN 4 THEN 'payment provider returned 502'
         ELSE 'device handshake failed: bad certificate'
       END,
       x.ip,
       CASE
         WHEN n = 777 THEN 'n/a'
         WHEN n = 2222 THEN 'yesterday'
         WHEN n IN (1001, 1501, 2001, 2501, 2999) THEN NULL
         WHEN abs(random()) % 100 < 55
           THEN strftime('%Y-%m-%dT%H:%M:%SZ', k.now_s - abs(random()) % (700 * 86400),
                         'unixepoch')
         ELSE strftime('%Y-%m-%dT%H:%M:%SZ',
                       k.now_s - (740 * 86400 + abs(random()) % (1815 * 86400)), 'unixepoch')
       END
FROM seq
JOIN clock k
JOIN ips x ON x.i = 1 + (seq.n * 7919 + 4) % 20000
WHERE n <= 3000;

-- Events: 196 past campaigns, one about every 13 days over seven years (the last two ended
-- less than 30 days ago), two running now (ended_at NULL) and two scheduled.
CREATE TEMP TABLE event_times AS
SELECT n AS id,
       CASE
         WHEN n <= 196 THEN k.now_s - ((197 - n) * 13 + abs(random()) % 4) * 86400
                            - abs(random()) % 43200
         WHEN n <= 198 THEN NULL
         ELSE k.now_s + ((n - 198) * 10 + 5) * 86400
       END AS ended_at,
       CASE
         WHEN n <= 196 THEN (1 + abs(random()) % 10) * 86400
         WHEN n <= 198 THEN (n - 195) * 86400    -- running: started 2 and 3 days ago
         ELSE 5 * 86400
       END AS length_s
FROM seq JOIN clock k WHERE n <= 200;

INSERT INTO events (id, name, started_at, ended_at)
SELECT t.id,
       CASE t.id % 5 WHEN 0 THEN 'Spring Giveaway' WHEN 1 THEN 'Night Vision Challenge'
                     WHEN 2 THEN 'Summer Lucky Draw' WHEN 3 THEN 'Holiday Captures'
                     ELSE 'Referral Sprint' END
         || ' ' || strftime('%Y', coalesce(t.ended_at, k.now_s), 'unixepoch') || ' #' || t.id,
       coalesce(t.ended_at, k.now_s) - t.length_s,
       t.ended_at
FROM event_times t JOIN clock k;

-- Participation logs: 6000 draws over the 198 events that have started, logged while the
-- event ran.
CREATE TEMP TABLE participation_pick AS
SELECT n, 1 + abs(random()) % 198 AS event_id FROM seq WHERE n <= 6000;

INSERT INTO event_participation_logs (event_id, account_id, ip, participation_count, logged_at)
SELECT p.event_id,
       CASE WHEN abs(random()) % 20 = 0 THEN NULL ELSE 1 + abs(random()) % 2000 END,
       x.ip,
       1 + abs(random()) % 12,
       e.started_at + abs(random()) % max(1, coalesce(e.ended_at, k.now_s) - e.started_at)
FROM participation_pick p
JOIN events e ON e.id = p.event_id
JOIN clock k
JOIN ips x ON x.i = 1 + (p.n * 7919 + 5) % 20000
ORDER BY p.n;

-- Videos: 70% approved, 10% pending review (uploaded in the last three days, not reviewed
-- yet), 20% rejected. 8% of the reviewed videos were uploaded in the last 20 days. Reviews
-- come one hour to three days after the upload. Three rejected rows migrated from an older
-- system have no review time.
CREATE TEMP TABLE video_draw AS
SELECT n AS id,
       abs(random()) % 100 AS status_roll,
       abs(random()) % 100 AS recent_roll,
       abs(random()) % (2535 * 86400) AS older_s,
       abs(random()) % (20 * 86400) AS recent_s,
       abs(random()) % (3 * 86400) AS pending_s,
       3600 + abs(random()) % (3 * 86400) AS review_delay_s
FROM seq WHERE n <= 1000;

CREATE TEMP TABLE video_times AS
SELECT d.id,
       CASE WHEN d.status_roll < 70 THEN 'approved'
            WHEN d.status_roll < 80 THEN 'pending'
            ELSE 'rejected' END AS status,
       k.now_s - CASE WHEN d.status_roll BETWEEN 70 AND 79 THEN d.pending_s
                      WHEN d.recent_roll < 8 THEN d.recent_s
                      ELSE 20 * 86400 + d.older_s END AS uploaded_s,
       d.review_delay_s
FROM video_draw d JOIN clock k;

INSERT INTO videos (id, account_id, title, storage_path, status, uploaded_at, reviewed_at)
SELECT v.id,
       1 + abs(random()) % 2000,
       CASE v.id % 6 WHEN 0 THEN 'Fox at the back door' WHEN 1 THEN 'Delivery drone landing'
                     WHEN 2 THEN 'Storm over the harbour' WHEN 3 THEN 'Deer crossing at night'
                     WHEN 4 THEN 'Cat vs. sprinkler' ELSE 'Snowfall timelapse' END,
       printf('captures/%s/%d.mp4', strftime('%Y/%m', v.uploaded_s, 'unixepoch'), v.id),
       v.status,
       strftime('%Y-%m-%dT%H:%M:%SZ', v.uploaded_s, 'unixepoch'),
       CASE
         WHEN v.status = 'pending' THEN NULL
         WHEN v.status = 'rejected'
              AND v.id IN (SELECT id FROM video_times WHERE status = 'rejected'
                           ORDER BY id LIMIT 3) THEN NULL
         ELSE strftime('%Y-%m-%dT%H:%M:%SZ',
                       min(v.uploaded_s + v.review_delay_s, k.now_s - 60), 'unixepoch')
       END
FROM video_times v JOIN clock k;

-- Prospects: collected by the pre-sales form over the last two years and never purged; one
-- row stamped two days ahead by a form server with a wrong clock.
INSERT INTO prospects (first_name, last_name, email, company, country, phone, interest,
                       collected_at)
SELECT f.name, l.name,
       lower(substr(f.name, 1, 1) || l.name) || n || '@' ||
         CASE n % 3 WHEN 0 THEN 'example.com' WHEN 1 THEN 'example.org' ELSE 'example.net' END,
       CASE WHEN n % 4 = 0 THEN NULL ELSE l.name || ' ' ||
         CASE n % 3 WHEN 0 THEN 'Security GmbH' WHEN 1 THEN 'Facilities Ltd' ELSE 'Retail SA' END
       END,
       c.code,
       CASE WHEN n % 2 = 0 THEN NULL
            ELSE '+' || c.dial || ' ' || printf('%03d %04d', abs(random()) % 1000,
                                                abs(random()) % 10000) END,
       CASE n % 4 WHEN 0 THEN 'video conferencing' WHEN 1 THEN 'IP cameras'
                  WHEN 2 THEN 'desk phones' ELSE 'cloud storage' END,
       strftime('%Y-%m-%dT%H:%M:%fZ',
                CASE WHEN n = 250 THEN k.now_s + 2 * 86400
                     ELSE k.now_s - 600 - abs(random()) % (730 * 86400) END
                  + (abs(random()) % 1000) / 1000.0,
                'unixepoch')
FROM seq
JOIN clock k
JOIN first_names f ON f.i = 1 + (n * 5) % 24
JOIN last_names l ON l.i = 1 + (n * 3 + n / 20) % 20
JOIN countries c ON c.i = 1 + (n * 7) % 12
WHERE n <= 500;

-- Support tickets: kept forever; one about every two and a half days over seven years, the
-- last 40 still open. created_at has SQLite's CURRENT_TIMESTAMP form.
CREATE TEMP TABLE ticket_times AS
SELECT n,
       k.now_s - (1000 - n) * 220000 - abs(random()) % 86400 AS created_s,
       3600 + abs(random()) % (10 * 86400) AS handling_s
FROM seq JOIN clock k WHERE n <= 1000;

INSERT INTO support_tickets (account_id, subject, priority, status, created_at, closed_at)
SELECT 1 + abs(random()) % 2000,
       CASE t.n % 5 WHEN 0 THEN 'Camera goes offline every night'
                    WHEN 1 THEN 'Cannot bind device to my account'
                    WHEN 2 THEN 'Firmware update fails at 80%'
                    WHEN 3 THEN 'Refund for a duplicated order'
                    ELSE 'Echo during video calls' END,
       CASE t.n % 7 WHEN 0 THEN 'high' WHEN 1 THEN 'low' ELSE 'normal' END,
       CASE WHEN t.n > 960 THEN 'open' ELSE 'closed' END,
       datetime(t.created_s, 'unixepoch'),
       CASE WHEN t.n > 960 THEN NULL
            ELSE datetime(t.created_s + t.handling_s, 'unixepoch') END
FROM ticket_times t;

COMMIT;

PRAGMA journal_mode = WAL;
