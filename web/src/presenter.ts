// The presenter's corner of the page: who the agent is, its state ("lk.agent.state"), its voice
// (every remote audio track plays; the agent's also drives the level meter) and its video when
// an avatar publishes one — else the audio-only view.

import {
  type Participant,
  type RemoteParticipant,
  type RemoteTrack,
  type Room,
  Track,
} from "livekit-client";
import { byId, show } from "./dom";
import { AudioMeter } from "./meter";

const AGENT_STATE = "lk.agent.state";
// Avatar workers publish the agent's video (and voice) as a participant of their own.
const PUBLISH_ON_BEHALF = "lk.publish_on_behalf";
// What the presenter shows: "local", "vendor:<name>" or "audio-only" (no avatar could run, or
// the tenant turned it off); absent before the presenter has decided.
const AVATAR = "podium.avatar";
const AUDIO_ONLY = "audio-only";
const STATE_LABELS: Record<string, string> = {
  initializing: "getting ready",
  idle: "idle",
  listening: "listening",
  thinking: "thinking…",
  speaking: "speaking",
};

export function isPresenter(participant: Participant): boolean {
  return participant.isAgent || Boolean(participant.attributes[PUBLISH_ON_BEHALF]);
}

export class PresenterView {
  private readonly card = byId("presenter");
  private readonly video = byId<HTMLVideoElement>("avatar");
  private readonly audioOnly = byId("audio-only");
  private readonly audioOnlyLabel = byId("audio-only-label");
  private readonly state = byId("agent-state");
  private readonly youSpeaking = byId("you-speaking");
  private readonly audioSink = byId("audio-sink");
  private readonly meters = new Map<string, AudioMeter>();
  private meterTimer = 0;
  audioContext: AudioContext | null = null;

  render(room: Room): void {
    // The newest presenter: after a worker is lost, the next one joins while LiveKit still lists
    // the dead one (until its ICE timeouts, ~20 s), whose state never changes again.
    const agent = [...room.remoteParticipants.values()]
      .filter((p: RemoteParticipant) => p.isAgent && !p.attributes[PUBLISH_ON_BEHALF])
      .sort((a, b) => (b.joinedAt?.getTime() ?? 0) - (a.joinedAt?.getTime() ?? 0))[0];
    const state = agent?.attributes[AGENT_STATE] ?? (agent ? "initializing" : "absent");
    this.card.dataset.agentState = state;
    this.state.textContent = agent ? (STATE_LABELS[state] ?? state) : "not here yet";
    const avatar = agent?.attributes[AVATAR];
    if (avatar) this.card.dataset.avatar = avatar;
    else delete this.card.dataset.avatar;
    this.audioOnlyLabel.textContent = !agent
      ? "Waiting for the presenter to join…"
      : avatar && avatar !== AUDIO_ONLY
        ? "The presenter's video is starting…"
        : "Audio only";
  }

  trackAdded(track: RemoteTrack, participant: RemoteParticipant): void {
    if (track.kind === Track.Kind.Audio) {
      this.audioSink.append(track.attach());
      if (isPresenter(participant) && this.audioContext && track.sid) {
        this.meters.set(track.sid, new AudioMeter(this.audioContext, track.mediaStreamTrack));
      }
    } else if (track.kind === Track.Kind.Video && isPresenter(participant)) {
      track.attach(this.video);
      show(this.video, true);
      show(this.audioOnly, false);
      this.card.dataset.video = "on";
    }
  }

  trackRemoved(track: RemoteTrack): void {
    for (const element of track.detach()) {
      if (element !== this.video) element.remove();
    }
    if (track.kind === Track.Kind.Video && this.video.srcObject === null) {
      show(this.video, false);
      show(this.audioOnly, true);
      delete this.card.dataset.video;
    }
    if (track.sid) {
      this.meters.get(track.sid)?.close();
      this.meters.delete(track.sid);
    }
  }

  speakers(speakers: Participant[], local: Participant | undefined): void {
    show(this.youSpeaking, speakers.some((p) => p === local));
    this.card.classList.toggle("is-speaking", speakers.some(isPresenter));
  }

  /** ``data-level`` is the agent's audio level (RMS, 0–1); the orb grows with it. */
  startMeters(): void {
    window.clearInterval(this.meterTimer);
    this.meterTimer = window.setInterval(() => {
      let level = 0;
      for (const meter of this.meters.values()) level = Math.max(level, meter.level());
      this.card.dataset.level = level.toFixed(4);
      this.card.style.setProperty("--level", Math.min(1, level * 6).toFixed(3));
    }, 50);
  }

  stopMeters(): void {
    window.clearInterval(this.meterTimer);
    for (const meter of this.meters.values()) meter.close();
    this.meters.clear();
    this.card.dataset.level = "0";
    this.card.style.setProperty("--level", "0");
  }
}
