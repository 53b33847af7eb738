-- A host may lock navigation (issue 20): while ``locked``, participants cannot move the slides
-- (they may still pause and resume); the host, the presenter and the API still can. Locking and unlocking
-- are changes like any other: a new version, recorded in slide_transitions with their actor.
ALTER TABLE slide_states ADD COLUMN locked boolean NOT NULL DEFAULT false;
ALTER TABLE slide_transitions ADD COLUMN locked boolean NOT NULL DEFAULT false;
ALTER TABLE slide_transitions DROP CONSTRAINT slide_transitions_action_check;
ALTER TABLE slide_transitions ADD CONSTRAINT slide_transitions_action_check CHECK (
    action IN ('start', 'next', 'previous', 'goto', 'first', 'last', 'pause', 'resume',
               'lock', 'unlock'));
