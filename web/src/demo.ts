// The integrator demo page (development only, PODIUM_DEMO_PAGE=true): the same public API an
// integrator calls with a tenant key — list/upload decks, create a session, open its join_url.

import { ApiError, request } from "./api";
import { byId, show } from "./dom";

interface Deck {
  deck_id: string;
  filename: string;
  title: string | null;
  status: "pending" | "processing" | "ready" | "failed";
  progress: { slides_done: number; slides_total: number } | null;
  failure: { code: string; message: string } | null;
}

interface Created {
  session_id: string;
  join_url: string;
}

const KEY_STORAGE = "podium.demo.apiKey";
const el = {
  keyForm: byId<HTMLFormElement>("key-form"),
  key: byId<HTMLInputElement>("api-key"),
  keyStatus: byId("key-status"),
  decks: byId<HTMLFieldSetElement>("decks"),
  reload: byId<HTMLButtonElement>("reload-decks"),
  uploadForm: byId<HTMLFormElement>("upload-form"),
  upload: byId<HTMLInputElement>("upload"),
  uploadStatus: byId("upload-status"),
  startForm: byId<HTMLFormElement>("start-form"),
  name: byId<HTMLInputElement>("name"),
  started: byId("started"),
  sessionId: byId("session-id"),
  joinLink: byId<HTMLAnchorElement>("join-link"),
  viewer: byId<HTMLButtonElement>("viewer"),
  viewerLink: byId("viewer-link"),
  viewerHref: byId<HTMLAnchorElement>("viewer-href"),
  end: byId<HTMLButtonElement>("end"),
  startStatus: byId("start-status"),
};

let apiKey = "";
let current: Created | null = null;

function message(error: unknown): string {
  return error instanceof ApiError ? `${error.message} (${error.code})` : String(error);
}

function setKey(key: string): void {
  apiKey = key.trim();
  el.key.value = apiKey;
  try {
    localStorage.setItem(KEY_STORAGE, apiKey);
  } catch {
    // private mode: the key lives until the page closes
  }
}

async function loadDecks(selected?: string): Promise<void> {
  if (!apiKey) return;
  try {
    const page = await request<{ items: Deck[] }>("/v1/decks?limit=50", { bearer: apiKey });
    el.keyStatus.textContent = "Key accepted.";
    for (const node of [...el.decks.querySelectorAll("label.deck")].slice(1)) node.remove();
    for (const deck of page.items) {
      const label = document.createElement("label");
      label.className = "deck";
      label.dataset.status = deck.status;
      const input = document.createElement("input");
      input.type = "radio";
      input.name = "deck";
      input.value = deck.deck_id;
      input.disabled = deck.status !== "ready";
      input.checked = deck.deck_id === selected;
      const text = document.createElement("span");
      const title = document.createElement("strong");
      title.textContent = deck.title || deck.filename;
      const detail = document.createElement("small");
      const progress = deck.progress ? ` ${deck.progress.slides_done}/${deck.progress.slides_total}` : "";
      detail.textContent =
        deck.status === "ready"
          ? `${deck.filename} · ready`
          : deck.status === "failed"
            ? `${deck.filename} · failed: ${deck.failure?.message ?? "unknown"}`
            : `${deck.filename} · ${deck.status}${progress}`;
      text.append(title, detail);
      label.append(input, text);
      el.decks.append(label);
    }
  } catch (error) {
    el.keyStatus.textContent = message(error);
  }
}

async function uploadDeck(file: File): Promise<void> {
  const form = new FormData();
  form.append("file", file);
  el.uploadStatus.textContent = `Uploading ${file.name}…`;
  try {
    const deck = await request<Deck>("/v1/decks", {
      method: "POST",
      bearer: apiKey,
      form,
      timeoutMs: 120_000,
    });
    // Ingestion progress is a job status, not slide state: a short poll on this dev page is fine.
    for (;;) {
      const now = await request<Deck>(`/v1/decks/${deck.deck_id}`, { bearer: apiKey });
      const progress = now.progress ? ` (${now.progress.slides_done}/${now.progress.slides_total})` : "";
      el.uploadStatus.textContent = `${file.name}: ${now.status}${progress}`;
      if (now.status === "ready" || now.status === "failed") {
        if (now.failure) el.uploadStatus.textContent += ` — ${now.failure.message}`;
        await loadDecks(now.status === "ready" ? now.deck_id : undefined);
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 700));
    }
  } catch (error) {
    el.uploadStatus.textContent = message(error);
  }
}

async function startSession(): Promise<void> {
  const chosen = el.decks.querySelector<HTMLInputElement>("input[name=deck]:checked");
  const name = el.name.value.trim();
  el.startStatus.textContent = "Starting…";
  try {
    current = await request<Created>("/v1/sessions", {
      method: "POST",
      bearer: apiKey,
      json: { deck_id: chosen?.value || null, participant: name ? { name } : {} },
    });
    el.sessionId.textContent = current.session_id;
    el.joinLink.href = current.join_url;
    show(el.started, true);
    show(el.viewerLink, false);
    el.startStatus.textContent = "Open the join page: the presenter greets you when you join.";
    el.joinLink.focus();
  } catch (error) {
    el.startStatus.textContent = message(error);
  }
}

async function inviteViewer(): Promise<void> {
  if (!current) return;
  try {
    const token = await request<Created>(`/v1/sessions/${current.session_id}/tokens`, {
      method: "POST",
      bearer: apiKey,
      json: { role: "viewer", name: "Viewer" },
    });
    el.viewerHref.href = token.join_url;
    el.viewerHref.textContent = "open as a viewer";
    show(el.viewerLink, true);
  } catch (error) {
    el.startStatus.textContent = message(error);
  }
}

async function endSession(): Promise<void> {
  if (!current) return;
  try {
    await request(`/v1/sessions/${current.session_id}/end`, { method: "POST", bearer: apiKey });
    el.startStatus.textContent = `Session ${current.session_id} ended.`;
    show(el.started, false);
    current = null;
  } catch (error) {
    el.startStatus.textContent = message(error);
  }
}

function main(): void {
  const fragment = new URLSearchParams(window.location.hash.replace(/^#/, ""));
  const fromUrl = fragment.get("key");
  if (fromUrl) history.replaceState(null, "", window.location.pathname);
  let stored = "";
  try {
    stored = localStorage.getItem(KEY_STORAGE) ?? "";
  } catch {
    stored = "";
  }
  if (fromUrl || stored) setKey(fromUrl || stored);
  el.keyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    setKey(el.key.value);
    void loadDecks();
  });
  el.reload.addEventListener("click", () => void loadDecks());
  el.uploadForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const file = el.upload.files?.[0];
    if (file) void uploadDeck(file);
  });
  el.startForm.addEventListener("submit", (event) => {
    event.preventDefault();
    void startSession();
  });
  el.viewer.addEventListener("click", () => void inviteViewer());
  el.end.addEventListener("click", () => void endSession());
  void loadDecks();
}

main();
