// The slide on screen. Every source (room metadata, a POST answer, a GET) goes through apply():
// the highest version wins and an update is always the whole state (docs/protocols.md).

import { byId, show } from "./dom";
import type { SlideState } from "./types";

export class SlideView {
  private state: SlideState | null = null;
  private readonly figure = byId("slide");
  private readonly image = byId<HTMLImageElement>("slide-image");
  private readonly placeholder = byId("slide-placeholder");
  private readonly counter = byId("slide-counter");
  private readonly title = byId("slide-title");
  private readonly prev = byId<HTMLButtonElement>("prev");
  private readonly next = byId<HTMLButtonElement>("next");
  private readonly pause = byId<HTMLButtonElement>("pause");
  private readonly paused = byId("paused-badge");
  private readonly lock = byId<HTMLButtonElement>("lock");
  private readonly locked = byId("locked-badge");
  private canNavigate = false;
  private isHost = false;
  private busy = false;

  /** Called when the image link has expired or failed: fetch a freshly signed state. */
  onStaleImage: () => void = () => {};

  constructor() {
    this.image.addEventListener("error", () => {
      if (this.image.getAttribute("src")) this.onStaleImage();
    });
  }

  get current(): SlideState | null {
    return this.state;
  }

  /** ``host``: may move the slides while they are locked, and lock or unlock them. */
  setNavigation(allowed: boolean, host = false): void {
    this.canNavigate = allowed;
    this.isHost = host;
    show(this.prev, allowed);
    show(this.next, allowed);
    show(this.pause, allowed);
    show(this.lock, host);
    this.render();
  }

  setBusy(busy: boolean): void {
    this.busy = busy;
    this.render();
  }

  /** ``refresh`` accepts the same version again (a newly signed image link). */
  apply(state: SlideState | null, refresh = false): boolean {
    if (!state) return false;
    const known = this.state?.version ?? 0;
    if (state.version < known || (state.version === known && !refresh)) return false;
    this.state = state;
    this.render();
    return true;
  }

  imageExpiresSoon(now = Date.now()): boolean {
    const url = this.state?.image_url;
    if (!url) return false;
    const exp = Number(new URL(url, window.location.href).searchParams.get("exp"));
    return Number.isFinite(exp) && exp * 1000 - now < 60_000;
  }

  private render(): void {
    const state = this.state;
    if (!state) {
      this.counter.textContent = "–";
      this.title.textContent = "";
      this.prev.disabled = this.next.disabled = this.pause.disabled = this.lock.disabled = true;
      show(this.paused, false);
      show(this.locked, false);
      return;
    }
    this.figure.dataset.index = String(state.index);
    this.figure.dataset.version = String(state.version);
    this.counter.textContent = `Slide ${state.index} of ${state.count}`;
    this.title.textContent = state.title ?? "";
    const label = `Slide ${state.index} of ${state.count}${state.title ? `: ${state.title}` : ""}`;
    if (state.image_url) {
      if (this.image.getAttribute("src") !== state.image_url) this.image.src = state.image_url;
      this.image.alt = label;
      show(this.image, true);
      show(this.placeholder, false);
    } else {
      this.image.removeAttribute("src");
      show(this.image, false);
      this.placeholder.textContent = state.title ?? label;
      show(this.placeholder, true);
    }
    const locked = Boolean(state.locked);
    const moves = this.canNavigate && !this.busy && (!locked || this.isHost);
    this.prev.disabled = !moves || state.index <= 1;
    this.next.disabled = !moves || state.index >= state.count;
    this.lock.disabled = !this.isHost || this.busy;
    this.lock.setAttribute("aria-pressed", String(locked));
    this.lock.textContent = locked ? "Unlock slides" : "Lock slides";
    this.figure.dataset.locked = String(locked);
    show(this.locked, locked);
    this.pause.disabled = !this.canNavigate || this.busy;
    this.pause.setAttribute("aria-pressed", String(state.paused));
    this.pause.textContent = state.paused ? "Resume presentation" : "Pause presentation";
    this.figure.dataset.paused = String(state.paused);
    show(this.paused, state.paused);
  }
}
