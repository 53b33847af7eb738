// Wire shapes the pages read (docs/protocols.md).

export interface SlideState {
  session_id: string;
  deck_id: string;
  index: number;
  count: number;
  version: number;
  title: string | null;
  image_url: string | null;
  paused: boolean;
  /** The host locked navigation: only the host (and the presenter) move the slides. */
  locked?: boolean;
  changed_by: string;
  changed_at: string;
}

export interface ParticipantSession {
  session_id: string;
  status: "created" | "active" | "ended";
  identity: string;
  role: string;
  livekit_url: string;
  has_deck: boolean;
  end_reason: string | null;
}

/** The room metadata the control plane writes: {"podium": {"slide": SlideState}}. */
export function slideFromRoomMetadata(metadata: string | undefined): SlideState | null {
  if (!metadata) return null;
  try {
    const parsed = JSON.parse(metadata) as { podium?: { slide?: SlideState } };
    const slide = parsed.podium?.slide;
    return slide && typeof slide.version === "number" ? slide : null;
  } catch {
    return null;
  }
}
