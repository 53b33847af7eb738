// Live captions from the agent framework's transcription text streams (topic
// "lk.transcription"). The agent publishes its own speech as one stream per segment whose chunks
// are deltas, and the user's speech (on the user's behalf) as a new stream per update carrying
// the segment's whole text; both name the segment in "lk.segment_id". So: per stream, join the
// chunks; per segment, the latest stream's text replaces the earlier one.

import type { TextStreamReader } from "livekit-client";
import { byId, show } from "./dom";

export const TRANSCRIPTION_TOPIC = "lk.transcription";
const SEGMENT_ID = "lk.segment_id";
const MAX_LINES = 60;

export type Speaker = "agent" | "user" | "other";

export class Captions {
  private readonly list = byId<HTMLOListElement>("captions");
  private readonly empty = byId("captions-empty");
  // Screen readers hear each finished line once, not every word of it as it streams in.
  private readonly announcer = byId("captions-live");
  private readonly lines = new Map<string, HTMLLIElement>();

  constructor(private readonly whoIs: (identity: string) => { speaker: Speaker; label: string }) {}

  /** A text stream handler for ``room.registerTextStreamHandler(TRANSCRIPTION_TOPIC, …)``. */
  readonly handle = (reader: TextStreamReader, participant: { identity: string }): void => {
    void this.read(reader, participant.identity);
  };

  private async read(reader: TextStreamReader, identity: string): Promise<void> {
    const attributes = reader.info.attributes ?? {};
    const segment = attributes[SEGMENT_ID] ?? reader.info.id;
    const { speaker, label } = this.whoIs(identity);
    let text = "";
    try {
      for await (const chunk of reader) {
        text += chunk;
        this.show(segment, speaker, label, plain(text), false);
      }
      // The stream closing ends the segment (its "lk.transcription_final" rides on the trailer).
      this.show(segment, speaker, label, plain(text), true);
    } catch {
      // a stream cut by a disconnect: keep what arrived
    }
  }

  private show(segment: string, speaker: Speaker, label: string, text: string, final: boolean) {
    if (!text.trim()) return;
    let line = this.lines.get(segment);
    if (!line) {
      line = document.createElement("li");
      line.dataset.speaker = speaker;
      line.dataset.segment = segment;
      const who = document.createElement("span");
      who.className = "who";
      who.textContent = label;
      const said = document.createElement("span");
      said.className = "said";
      line.append(who, said);
      this.list.append(line);
      this.lines.set(segment, line);
      while (this.list.children.length > MAX_LINES) {
        const oldest = this.list.firstElementChild as HTMLLIElement;
        this.lines.delete(oldest.dataset.segment ?? "");
        oldest.remove();
      }
      show(this.empty, false);
    }
    (line.querySelector(".said") as HTMLElement).textContent = text.trim();
    line.classList.toggle("interim", !final);
    if (final) this.announcer.textContent = `${label}: ${text.trim()}`;
    this.list.scrollTop = this.list.scrollHeight;
  }
}

/** Transcriptions may be JSON lines ({"text": …}) when the agent asks for timed text. */
function plain(text: string): string {
  if (!text.trimStart().startsWith("{")) return text;
  const parts: string[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    try {
      const parsed = JSON.parse(line) as { text?: unknown };
      parts.push(typeof parsed.text === "string" ? parsed.text : "");
    } catch {
      return text;
    }
  }
  return parts.join("");
}
