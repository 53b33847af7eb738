-- Languages (docs/languages.md): a deck's language, detected from its text at ingestion; the
-- session's, set at creation or taken from its deck; and lexical search in the deck's language
-- (the chunks' text search vector was English for every deck: Spanish words were stemmed by
-- English rules and Spanish stop words counted as rare terms).
ALTER TABLE decks ADD COLUMN language text NOT NULL DEFAULT 'en';
ALTER TABLE sessions ADD COLUMN language text;

ALTER TABLE chunks ADD COLUMN ts_config regconfig NOT NULL DEFAULT 'english';
ALTER TABLE chunks DROP COLUMN tsv;
ALTER TABLE chunks ADD COLUMN tsv tsvector
    GENERATED ALWAYS AS (to_tsvector(ts_config, content)) STORED;
CREATE INDEX chunks_tsv_idx ON chunks USING gin (tsv);
