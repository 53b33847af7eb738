// The join page: one participant in one Podium session.
//
// Reads: its token (URL fragment), GET /v1/participant/session (is the session live, my role,
// where LiveKit is), the room metadata {"podium": {"slide": …}} (the slide, pushed), the agent's
// "lk.agent.state" attribute, the "lk.transcription" text streams (captions), remote tracks.
// Sends: POST /v1/participant/slide (next/previous/pause/resume; lock/unlock for the host), the
// microphone track, and typed questions as "lk.chat" text streams (viewers too; the presenter
// answers one at a time).

import {
  ConnectionState,
  DisconnectReason,
  MediaDeviceFailure,
  Room,
  RoomEvent,
} from "livekit-client";
import { ApiError, request } from "./api";
import { Captions, type Speaker, TRANSCRIPTION_TOPIC } from "./captions";
import { byId, show } from "./dom";
import { isPresenter, PresenterView } from "./presenter";
import { SlideView } from "./slides";
import { forgetToken, readClaims, takeToken, type TokenClaims } from "./token";
import { type ParticipantSession, type SlideState, slideFromRoomMetadata } from "./types";

const RETRY_DELAYS_MS = [1_000, 2_000, 4_000, 8_000, 15_000];
const CHAT_TOPIC = "lk.chat";
const MAX_QUESTION_CHARS = 500;
const el = {
  connection: byId("connection"),
  loading: byId("loading"),
  notice: byId("notice"),
  noticeTitle: byId("notice-title"),
  noticeText: byId("notice-text"),
  noticeAction: byId<HTMLButtonElement>("notice-action"),
  lobby: byId("lobby"),
  lobbyWho: byId("lobby-who"),
  lobbyMic: byId<HTMLInputElement>("lobby-mic"),
  lobbyMicRow: byId("lobby-mic-row"),
  join: byId<HTMLButtonElement>("join"),
  room: byId("room"),
  mic: byId<HTMLButtonElement>("mic"),
  micLabel: byId("mic-label"),
  micMessage: byId("mic-message"),
  leave: byId<HTMLButtonElement>("leave"),
  pause: byId<HTMLButtonElement>("pause"),
  lock: byId<HTMLButtonElement>("lock"),
  prev: byId<HTMLButtonElement>("prev"),
  next: byId<HTMLButtonElement>("next"),
  toast: byId("toast"),
  ask: byId<HTMLFormElement>("ask"),
  askText: byId<HTMLInputElement>("ask-text"),
  askSend: byId<HTMLButtonElement>("ask-send"),
  askStatus: byId("ask-status"),
};

type Screen = "loading" | "notice" | "lobby" | "room";

function screen(which: Screen): void {
  show(el.loading, which === "loading");
  show(el.notice, which === "notice");
  show(el.lobby, which === "lobby");
  show(el.room, which === "room");
}

function notice(title: string, text: string, action?: { label: string; run: () => void }): void {
  el.noticeTitle.textContent = title;
  el.noticeText.textContent = text;
  el.noticeAction.onclick = action ? () => action.run() : null;
  el.noticeAction.textContent = action?.label ?? "";
  show(el.noticeAction, Boolean(action));
  screen("notice");
  if (action) el.noticeAction.focus();
}

let toastTimer = 0;
function toast(text: string): void {
  el.toast.textContent = text;
  show(el.toast, true);
  window.clearTimeout(toastTimer);
  toastTimer = window.setTimeout(() => show(el.toast, false), 4_000);
}

function setConnection(state: "idle" | "connecting" | "connected" | "reconnecting" | "offline") {
  const labels = {
    idle: "Not connected",
    connecting: "Connecting…",
    connected: "Connected",
    reconnecting: "Reconnecting…",
    offline: "Offline",
  };
  el.connection.dataset.state = state;
  el.connection.textContent = labels[state];
}

function randomKey(): string {
  // crypto.randomUUID needs a secure context; getRandomValues does not.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `web-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

class JoinPage {
  private readonly sessionId: string;
  private token = "";
  private claims: TokenClaims | null = null;
  private session: ParticipantSession | null = null;
  private room: Room | null = null;
  private readonly slides = new SlideView();
  private readonly captions: Captions;
  private readonly presenter = new PresenterView();
  private audioContext: AudioContext | null = null;
  private retry = 0;
  private retryTimer = 0;
  private leaving = false;
  private micWanted = false;

  constructor() {
    this.sessionId = decodeURIComponent(window.location.pathname.split("/").filter(Boolean).pop() ?? "");
    this.captions = new Captions((identity) => this.whoIs(identity));
    this.slides.onStaleImage = () => void this.refreshSlide();
    el.ask.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.ask();
    });
  }

  /** Send the typed question to the presenter, who answers it by voice and in the captions. */
  private async ask(): Promise<void> {
    const text = el.askText.value.trim().slice(0, MAX_QUESTION_CHARS);
    const room = this.room;
    if (!text || !room || room.state !== ConnectionState.Connected) return;
    el.askSend.disabled = true;
    try {
      await room.localParticipant.sendText(text, { topic: CHAT_TOPIC });
      el.askText.value = "";
      el.askStatus.textContent = `You asked: ${text}`;
    } catch {
      el.askStatus.textContent = "Your question could not be sent. Try again.";
    } finally {
      el.askSend.disabled = false;
    }
  }

  private get canPublish(): boolean {
    return this.session?.role === "participant" || this.isHost;
  }

  private get isHost(): boolean {
    return this.session?.role === "host";
  }

  async start(): Promise<void> {
    const token = takeToken(this.sessionId);
    if (!token) {
      notice(
        "This link is incomplete",
        "The join link is missing its access token. Open the full link you were given, or ask the organiser for a new one.",
      );
      return;
    }
    this.token = token;
    this.claims = readClaims(token);
    if (!this.claims) {
      notice("This link is not valid", "The access token in the link could not be read. Ask the organiser for a new link.");
      return;
    }
    if (this.claims.sessionId !== this.sessionId) {
      notice("This link is not valid", "The link is damaged or belongs to another session. Ask the organiser for a new link.");
      return;
    }
    if (this.expired()) return;
    const session = await this.checkSession();
    if (!session) return;
    this.lobby(session);
  }

  /** True (and the message shown) when the token has expired. */
  private expired(): boolean {
    if (this.claims && this.claims.exp * 1000 <= Date.now()) {
      forgetToken(this.sessionId);
      this.teardown();
      notice(
        "This link has expired",
        "Join links are valid for a limited time. Ask the organiser for a new link to rejoin.",
      );
      return true;
    }
    return false;
  }

  /** The session as the control plane sees it; null when a message now explains why not. */
  private async checkSession(): Promise<ParticipantSession | null> {
    try {
      const session = await request<ParticipantSession>("/v1/participant/session", {
        bearer: this.token,
      });
      if (session.status === "ended") {
        this.ended();
        return null;
      }
      this.session = session;
      return session;
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        if (this.expired()) return null;
        notice("This link is not valid", "The access token was refused. Ask the organiser for a new link.");
        return null;
      }
      if (error instanceof ApiError && error.status === 404) {
        notice("Session not found", "This session does not exist any more. Ask the organiser for a new link.");
        return null;
      }
      notice("Can't reach Podium", "The server did not answer. Check your connection, then try again.", {
        label: "Try again",
        run: () => void this.start(),
      });
      return null;
    }
  }

  private ended(): void {
    forgetToken(this.sessionId);
    this.teardown();
    notice("This session has ended", "The presentation is over. Thank you for joining!");
  }

  private lobby(session: ParticipantSession): void {
    const name = this.claims?.name;
    el.lobbyWho.textContent = session.role === "viewer"
      ? `You are joining${name ? ` as ${name}` : ""} to watch and listen.`
      : `You are joining${name ? ` as ${name}` : ""}.`;
    show(el.lobbyMicRow, this.canPublish);
    screen("lobby");
    el.join.disabled = false;
    el.join.onclick = () => void this.join();
    el.join.focus();
    this.room = this.buildRoom();
    void this.room.prepareConnection(session.livekit_url, this.token).catch(() => undefined);
  }

  private async join(): Promise<void> {
    el.join.disabled = true;
    // Created inside the click: browsers let audio start only after a user gesture.
    this.audioContext ??= new AudioContext();
    this.presenter.audioContext = this.audioContext;
    void this.audioContext.resume();
    this.micWanted = this.canPublish && el.lobbyMic.checked;
    this.slides.setNavigation(this.canPublish, this.isHost);
    // A session without a deck is a conversation: no slide area at all.
    el.room.classList.toggle("no-deck", !this.session?.has_deck);
    if (!this.session?.has_deck) {
      show(el.pause, false);
      show(el.lock, false);
    }
    show(el.mic, this.canPublish);
    this.renderMic();
    screen("room");
    // Keyboard users land on the first control instead of the top of the page.
    (this.canPublish ? el.mic : el.leave).focus();
    this.bindKeys();
    el.leave.onclick = () => this.leave();
    el.mic.onclick = () => void this.toggleMic();
    el.prev.onclick = () => void this.navigate("previous");
    el.next.onclick = () => void this.navigate("next");
    el.pause.onclick = () => void this.navigate(this.slides.current?.paused ? "resume" : "pause");
    el.lock.onclick = () => void this.navigate(this.slides.current?.locked ? "unlock" : "lock");
    await this.connect();
  }

  private buildRoom(): Room {
    const room = new Room({ adaptiveStream: true, dynacast: true, disconnectOnPageLeave: true });
    room
      .on(RoomEvent.ConnectionStateChanged, (state) => this.onConnectionState(state))
      .on(RoomEvent.Disconnected, (reason) => this.onDisconnected(reason))
      .on(RoomEvent.RoomMetadataChanged, (metadata) => {
        this.slides.apply(slideFromRoomMetadata(metadata));
      })
      .on(RoomEvent.TrackSubscribed, (track, _pub, participant) =>
        this.presenter.trackAdded(track, participant),
      )
      .on(RoomEvent.TrackUnsubscribed, (track) => this.presenter.trackRemoved(track))
      .on(RoomEvent.ParticipantConnected, () => this.presenter.render(room))
      .on(RoomEvent.ParticipantDisconnected, () => this.presenter.render(room))
      .on(RoomEvent.ParticipantAttributesChanged, () => this.presenter.render(room))
      .on(RoomEvent.ActiveSpeakersChanged, (speakers) =>
        this.presenter.speakers(speakers, this.room?.localParticipant),
      )
      .on(RoomEvent.LocalTrackPublished, () => this.renderMic())
      .on(RoomEvent.LocalTrackUnpublished, () => this.renderMic())
      .on(RoomEvent.TrackMuted, () => this.renderMic())
      .on(RoomEvent.TrackUnmuted, () => this.renderMic())
      .on(RoomEvent.MediaDevicesError, (error) => this.onMicError(error))
      .on(RoomEvent.AudioPlaybackStatusChanged, () => this.onPlaybackStatus());
    room.registerTextStreamHandler(TRANSCRIPTION_TOPIC, this.captions.handle);
    return room;
  }

  private async connect(): Promise<void> {
    const room = this.room;
    if (!room || !this.session) return;
    window.clearTimeout(this.retryTimer);
    setConnection("connecting");
    try {
      await room.connect(this.session.livekit_url, this.token, { autoSubscribe: true });
    } catch {
      if (this.leaving || this.expired()) return;
      await this.scheduleRetry();
      return;
    }
    this.retry = 0;
    this.slides.apply(slideFromRoomMetadata(room.metadata));
    if (!this.slides.current && this.session.has_deck) void this.refreshSlide();
    this.presenter.render(room);
    this.presenter.startMeters();
    try {
      await room.startAudio();
    } catch {
      this.onPlaybackStatus();
    }
    if (this.micWanted) await this.setMic(true);
  }

  /** After a failed connect or a lost connection the SDK could not resume. */
  private async scheduleRetry(): Promise<void> {
    setConnection("offline");
    const session = await this.checkSession();
    if (!session) return; // ended, expired or refused: the message says so
    screen("room");
    const delay = RETRY_DELAYS_MS[Math.min(this.retry, RETRY_DELAYS_MS.length - 1)];
    this.retry += 1;
    setConnection("reconnecting");
    toast(`Connection lost. Trying again in ${Math.round(delay / 1000)} s…`);
    this.retryTimer = window.setTimeout(() => void this.connect(), delay);
  }

  private onConnectionState(state: ConnectionState): void {
    if (state === ConnectionState.Connected) setConnection("connected");
    else if (state === ConnectionState.Connecting) setConnection("connecting");
    else if (state === ConnectionState.Reconnecting || state === ConnectionState.SignalReconnecting)
      setConnection("reconnecting");
    else setConnection("offline");
  }

  private onDisconnected(reason: DisconnectReason | undefined): void {
    this.presenter.stopMeters();
    if (this.leaving) return;
    switch (reason) {
      case DisconnectReason.ROOM_DELETED:
      case DisconnectReason.ROOM_CLOSED:
        this.ended();
        return;
      case DisconnectReason.DUPLICATE_IDENTITY:
        this.teardown();
        notice(
          "You joined somewhere else",
          "This link was opened in another tab or on another device, so this one was closed.",
          { label: "Rejoin here", run: () => window.location.reload() },
        );
        return;
      case DisconnectReason.CLIENT_INITIATED:
        return;
      case DisconnectReason.PARTICIPANT_REMOVED:
        this.teardown();
        notice("You were removed", "The organiser removed you from this session.");
        return;
      default:
        void this.scheduleRetry();
    }
  }

  private whoIs(identity: string): { speaker: Speaker; label: string } {
    const room = this.room;
    if (!room || identity === room.localParticipant.identity) return { speaker: "user", label: "You" };
    const participant = room.remoteParticipants.get(identity);
    if (!participant || isPresenter(participant)) return { speaker: "agent", label: "Presenter" };
    return { speaker: "other", label: participant.name || participant.identity };
  }

  private onPlaybackStatus(): void {
    if (!this.room || this.room.canPlaybackAudio) return;
    // Autoplay was blocked (e.g. after a reload without a click): one click fixes it.
    notice("Sound is paused", "Your browser needs a click before it plays the presenter's voice.", {
      label: "Play sound",
      run: () => {
        void this.room?.startAudio();
        void this.audioContext?.resume();
        screen("room");
      },
    });
  }

  private async toggleMic(): Promise<void> {
    const enabled = this.room?.localParticipant.isMicrophoneEnabled ?? false;
    this.micWanted = !enabled;
    await this.setMic(!enabled);
  }

  private async setMic(enabled: boolean): Promise<void> {
    const room = this.room;
    if (!room || !this.canPublish) return;
    if (enabled && !navigator.mediaDevices?.getUserMedia) {
      this.micProblem("blocked", "The microphone needs a secure (https) page; you can still listen and use the buttons.");
      return;
    }
    el.mic.disabled = true;
    try {
      await room.localParticipant.setMicrophoneEnabled(enabled);
      el.micMessage.textContent = "";
      delete el.mic.dataset.problem;
    } catch (error) {
      this.onMicError(error as Error);
    } finally {
      el.mic.disabled = false;
      this.renderMic();
    }
  }

  private onMicError(error: Error): void {
    this.micWanted = false;
    const failure = MediaDeviceFailure.getFailure(error);
    if (failure === MediaDeviceFailure.PermissionDenied) {
      this.micProblem(
        "blocked",
        "Microphone blocked. Allow it in your browser's site settings, then press the microphone button. You can still listen and use the buttons.",
      );
    } else if (failure === MediaDeviceFailure.NotFound) {
      this.micProblem("missing", "No microphone found. Plug one in, then press the microphone button.");
    } else if (failure === MediaDeviceFailure.DeviceInUse) {
      this.micProblem("busy", "Your microphone is in use by another app. Close it, then try again.");
    } else {
      this.micProblem("failed", "The microphone could not start. Try again, or reload the page.");
    }
  }

  private micProblem(kind: string, message: string): void {
    el.mic.dataset.problem = kind;
    el.micMessage.textContent = message;
    this.renderMic();
  }

  private renderMic(): void {
    const on = this.room?.localParticipant.isMicrophoneEnabled ?? false;
    el.mic.setAttribute("aria-pressed", String(on));
    el.mic.dataset.on = String(on);
    el.micLabel.textContent = on ? "Mute" : el.mic.dataset.problem ? "Microphone blocked" : "Unmute";
    el.mic.title = on ? "Mute your microphone (M)" : "Turn your microphone on (M)";
  }

  private async navigate(
    action: "next" | "previous" | "pause" | "resume" | "lock" | "unlock",
  ): Promise<void> {
    if (!this.canPublish) return;
    this.slides.setBusy(true);
    try {
      const state = await request<SlideState>("/v1/participant/slide", {
        method: "POST",
        bearer: this.token,
        json: { action, reason: "clicked in the web client" },
        headers: { "Idempotency-Key": randomKey() },
      });
      this.slides.apply(state);
    } catch (error) {
      if (error instanceof ApiError) {
        const state = error.body.state as SlideState | undefined;
        if (state) this.slides.apply(state);
        if (error.code === "session_ended") this.ended();
        else if (error.status === 401) this.expired() || toast(error.message);
        else if (!["no_next_slide", "no_previous_slide"].includes(error.code)) toast(error.message);
      }
    } finally {
      this.slides.setBusy(false);
    }
  }

  private async refreshSlide(): Promise<void> {
    try {
      const state = await request<SlideState>("/v1/participant/slide", { bearer: this.token });
      this.slides.apply(state, true);
    } catch {
      // the next push carries a fresh link anyway
    }
  }

  private bindKeys(): void {
    document.addEventListener("keydown", (event) => {
      if (el.room.hidden || event.altKey || event.ctrlKey || event.metaKey) return;
      const target = event.target as HTMLElement | null;
      if (target && ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName)) return;
      if (event.key === "ArrowRight" || event.key === "PageDown") {
        if (!el.next.disabled && !el.next.hidden) void this.navigate("next");
      } else if (event.key === "ArrowLeft" || event.key === "PageUp") {
        if (!el.prev.disabled && !el.prev.hidden) void this.navigate("previous");
      } else if (event.key === "p" || event.key === "P") {
        if (!el.pause.disabled && !el.pause.hidden) el.pause.click();
      } else if (event.key === "m" || event.key === "M") {
        if (this.canPublish && !el.mic.disabled) void this.toggleMic();
      } else {
        return;
      }
      event.preventDefault();
    });
    window.setInterval(() => {
      if (this.slides.imageExpiresSoon()) void this.refreshSlide();
    }, 30_000);
  }

  private leave(): void {
    this.leaving = true;
    this.teardown();
    notice("You left the presentation", "You can rejoin while the session is running.", {
      label: "Rejoin",
      run: () => window.location.reload(),
    });
  }

  private teardown(): void {
    this.leaving = true; // our own disconnect must not trigger a reconnect
    window.clearTimeout(this.retryTimer);
    this.presenter.stopMeters();
    const room = this.room;
    this.room = null;
    if (room) void room.disconnect();
    setConnection("idle");
  }
}

void new JoinPage().start();
