-- Decks, their slides, and search chunks (dense vectors + full text).
CREATE TABLE decks (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id          uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    filename           text NOT NULL,
    kind               text NOT NULL CHECK (kind IN ('pdf', 'pptx')),
    size_bytes         bigint NOT NULL,
    sha256             text NOT NULL,
    title              text,
    status             text NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'processing', 'ready', 'failed')),
    slides_total       integer NOT NULL,
    slides_done        integer NOT NULL DEFAULT 0,
    failure_code       text,
    failure_message    text,
    previews_available boolean NOT NULL DEFAULT false,
    embedding_model    text,
    embedding_dim      integer,
    attempts           integer NOT NULL DEFAULT 0,
    lease_until        timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    ready_at           timestamptz
);
CREATE INDEX decks_tenant_created_idx ON decks (tenant_id, created_at DESC);
CREATE INDEX decks_unfinished_idx ON decks (created_at) WHERE status IN ('pending', 'processing');

CREATE TABLE slides (
    deck_id     uuid NOT NULL REFERENCES decks(id) ON DELETE CASCADE,
    index       integer NOT NULL CHECK (index >= 1),
    title       text,
    body        text NOT NULL,
    notes       text,
    image_key   text,
    thumb_key   text,
    PRIMARY KEY (deck_id, index)
);

-- One dimension for every provider: the local model is 384-d, and OpenAI's text-embedding-3
-- models are asked for 384-d vectors, so one HNSW index serves both.
CREATE TABLE chunks (
    id          bigserial PRIMARY KEY,
    deck_id     uuid NOT NULL REFERENCES decks(id) ON DELETE CASCADE,
    slide_index integer NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('slide', 'notes')),
    content     text NOT NULL,
    embedding   vector(384) NOT NULL,
    tsv         tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED
);
CREATE INDEX chunks_deck_idx ON chunks (deck_id, slide_index);
CREATE INDEX chunks_embedding_idx ON chunks USING hnsw (embedding vector_cosine_ops);
CREATE INDEX chunks_tsv_idx ON chunks USING gin (tsv);

ALTER TABLE sessions
    ADD CONSTRAINT sessions_deck_fk FOREIGN KEY (deck_id) REFERENCES decks(id) ON DELETE SET NULL;
