// The deck analytics page (/analytics/{deck_id}): GET /v1/decks/{id}/analytics with the read-only
// link token from the URL fragment (#token=, minted by POST /v1/decks/{id}/analytics/link) or a
// tenant API key with records:read typed into the page; either is kept in this tab's
// sessionStorage only. Plain DOM and SVG, no chart library.

import { ApiError, request } from "./api";
import { byId, show } from "./dom";

interface SlideStats {
  index: number;
  title: string | null;
  thumbnail_url: string | null;
  seconds: number;
  mean_seconds: number;
  paused_seconds: number;
  questions: number;
  declined: number;
  interruptions: number;
  reached: number;
  drop_offs: number;
}

interface Question {
  session_id: string;
  at: string;
  slide_index: number | null;
  text: string;
  declined: boolean;
}

interface ContentGap {
  question: string;
  count: number;
  examples: string[];
  sessions: string[];
  slides: number[];
}

interface SessionSummary {
  session_id: string;
  started_at: string | null;
  length_seconds: number;
  max_slide: number | null;
  completion: number | null;
  drop_off_slide: number | null;
  questions: number;
  escalations: number;
}

interface DeckAnalytics {
  deck_id: string;
  title: string | null;
  slide_count: number;
  sessions_count: number;
  sessions_truncated: boolean;
  mean_length_seconds: number | null;
  mean_completion: number | null;
  ended_early: number;
  slides: SlideStats[];
  content_gaps: ContentGap[];
  questions: Question[];
  sessions: SessionSummary[];
}

const deckId = decodeURIComponent(window.location.pathname.split("/").filter(Boolean).pop() ?? "");
const storageKey = `podium.analytics.${deckId}`;
const SVG = "http://www.w3.org/2000/svg";
const DAY_MS = 86_400_000;

const el = {
  keyCard: byId("key-card"),
  keyForm: byId<HTMLFormElement>("key-form"),
  key: byId<HTMLInputElement>("api-key"),
  overview: byId("overview"),
  title: byId("deck-title"),
  rangeForm: byId<HTMLFormElement>("range-form"),
  from: byId<HTMLInputElement>("from"),
  to: byId<HTMLInputElement>("to"),
  summary: byId("summary"),
  status: byId("status"),
  slidesCard: byId("slides-card"),
  strip: byId("strip"),
  dropoffCard: byId("dropoff-card"),
  dropoff: byId("dropoff"),
  gapsCard: byId("gaps-card"),
  gaps: byId("gaps"),
  questionsCard: byId("questions-card"),
  questions: byId("questions"),
  sessionsCard: byId("sessions-card"),
  sessions: byId("sessions"),
};

function takeCredential(): string | null {
  const fragment = new URLSearchParams(window.location.hash.replace(/^#/, ""));
  const fromUrl = fragment.get("token");
  if (fromUrl) {
    remember(fromUrl);
    history.replaceState(null, "", window.location.pathname + window.location.search);
    return fromUrl;
  }
  try {
    return sessionStorage.getItem(storageKey);
  } catch {
    return null;
  }
}

function remember(credential: string): void {
  try {
    sessionStorage.setItem(storageKey, credential);
  } catch {
    // storage disabled: the page works until it is reloaded
  }
}

function forget(): void {
  try {
    sessionStorage.removeItem(storageKey);
  } catch {
    // nothing to forget
  }
}

function node<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  text?: string,
  className?: string,
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  if (text !== undefined) element.textContent = text;
  if (className) element.className = className;
  return element;
}

function svg(tag: string, attributes: Record<string, string | number>): SVGElement {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  return element;
}

function duration(seconds: number): string {
  const whole = Math.round(seconds);
  if (whole < 60) return `${whole}s`;
  const minutes = Math.floor(whole / 60);
  if (minutes < 60) return `${minutes}m ${String(whole % 60).padStart(2, "0")}s`;
  return `${Math.floor(minutes / 60)}h ${String(minutes % 60).padStart(2, "0")}m`;
}

function percent(share: number | null): string {
  return share === null ? "–" : `${Math.round(share * 100)}%`;
}

function day(date: Date): string {
  return date.toISOString().slice(0, 10);
}

function initialRange(): void {
  const query = new URLSearchParams(window.location.search);
  const today = new Date();
  el.to.value = query.get("to") ?? day(today);
  el.from.value = query.get("from") ?? day(new Date(today.getTime() - 30 * DAY_MS));
}

function rangeParams(): URLSearchParams {
  // The "to" day is included: the API's "to" is the next midnight (UTC).
  const to = new Date(`${el.to.value}T00:00:00Z`).getTime() + DAY_MS;
  return new URLSearchParams({
    from: `${el.from.value}T00:00:00Z`,
    to: new Date(to).toISOString(),
  });
}

function renderSummary(data: DeckAnalytics): void {
  el.title.textContent = data.title || "Untitled deck";
  const figures: [string, string][] = [
    ["Sessions", `${data.sessions_count}${data.sessions_truncated ? "+" : ""}`],
    ["Mean length", data.mean_length_seconds === null ? "–" : duration(data.mean_length_seconds)],
    ["Mean completion", percent(data.mean_completion)],
    ["Ended early", String(data.ended_early)],
    ["Content gaps", String(data.content_gaps.length)],
  ];
  el.summary.replaceChildren(
    ...figures.map(([label, value]) => {
      const item = node("div");
      item.append(node("dt", label), node("dd", value));
      return item;
    }),
  );
}

function renderStrip(data: DeckAnalytics): void {
  const longest = Math.max(1, ...data.slides.map((s) => s.mean_seconds));
  el.strip.replaceChildren(
    ...data.slides.map((slide) => {
      const item = node("li");
      item.dataset.index = String(slide.index);
      item.dataset.seconds = String(slide.seconds);
      item.dataset.questions = String(slide.questions);
      item.dataset.dropoffs = String(slide.drop_offs);
      const thumb = node("div", undefined, "thumb");
      if (slide.thumbnail_url) {
        const image = node("img");
        image.src = slide.thumbnail_url;
        image.alt = `Slide ${slide.index}`;
        thumb.append(image);
      } else {
        thumb.textContent = String(slide.index);
      }
      const meta = node("div", undefined, "meta");
      meta.append(node("strong", `${slide.index}. ${slide.title ?? "Untitled"}`));
      const time = node("span", duration(slide.mean_seconds), "time");
      time.title = `${duration(slide.seconds)} in all; ${duration(slide.paused_seconds)} paused`;
      const bar = node("div", undefined, "bar");
      const fill = node("span");
      fill.style.width = `${Math.round((slide.mean_seconds / longest) * 100)}%`;
      bar.append(fill);
      meta.append(time, node("span", "per session", "muted small"), bar);
      const asked = node("span", `${slide.questions} question${slide.questions === 1 ? "" : "s"}`);
      asked.className = "questions";
      meta.append(asked);
      if (slide.declined) meta.append(node("span", `${slide.declined} declined`, "declined"));
      meta.append(node("span", `reached by ${slide.reached}`, "muted small"));
      item.append(thumb, meta);
      return item;
    }),
  );
}

function renderDropoff(data: DeckAnalytics): void {
  const width = 720;
  const height = 200;
  const pad = { left: 30, bottom: 24, top: 10 };
  const count = Math.max(1, data.slides.length);
  const top = Math.max(1, data.sessions_count);
  const step = (width - pad.left) / count;
  const scale = (height - pad.bottom - pad.top) / top;
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": "Sessions that reached each slide, and where they ended early",
  });
  chart.append(svg("line", { x1: pad.left, x2: width, y1: height - pad.bottom, y2: height - pad.bottom, stroke: "#dfe2e8" }));
  const axis = svg("text", { x: 0, y: pad.top + 10 });
  axis.textContent = String(top);
  chart.append(axis);
  for (const [i, slide] of data.slides.entries()) {
    const x = pad.left + i * step + step * 0.15;
    const w = step * 0.7;
    const reached = slide.reached * scale;
    const dropped = slide.drop_offs * scale;
    const bar = svg("rect", { x, y: height - pad.bottom - reached, width: w, height: reached, class: "reached" });
    bar.dataset.index = String(slide.index);
    bar.dataset.reached = String(slide.reached);
    chart.append(bar);
    if (slide.drop_offs) {
      const drop = svg("rect", { x, y: height - pad.bottom - dropped, width: w, height: dropped, class: "dropped" });
      drop.dataset.index = String(slide.index);
      drop.dataset.dropoffs = String(slide.drop_offs);
      chart.append(drop);
    }
    const label = svg("text", { x: x + w / 2, y: height - 6, "text-anchor": "middle" });
    label.textContent = String(slide.index);
    chart.append(label);
  }
  el.dropoff.replaceChildren(chart);
}

function renderGaps(data: DeckAnalytics): void {
  if (!data.content_gaps.length) {
    el.gaps.replaceChildren(node("li", "None: the deck answered every question."));
    return;
  }
  el.gaps.replaceChildren(
    ...data.content_gaps.map((gap) => {
      const item = node("li");
      item.append(node("div", gap.question, "question"));
      const sessions = gap.sessions.length;
      const where = gap.slides.length ? `, on slide ${gap.slides.join(", ")}` : "";
      item.append(
        node(
          "div",
          `asked ${gap.count} time${gap.count === 1 ? "" : "s"} in ${sessions} session${sessions === 1 ? "" : "s"}${where}`,
          "count small",
        ),
      );
      const others = gap.examples.filter((e) => e !== gap.question);
      if (others.length) {
        const list = node("ul");
        list.append(...others.map((e) => node("li", e)));
        item.append(list);
      }
      return item;
    }),
  );
}

function renderQuestions(data: DeckAnalytics): void {
  const bySlide = new Map<number, Question[]>();
  for (const q of data.questions) {
    const key = q.slide_index ?? 0;
    bySlide.set(key, [...(bySlide.get(key) ?? []), q]);
  }
  if (!bySlide.size) {
    el.questions.replaceChildren(node("p", "No questions in this range.", "muted"));
    return;
  }
  const titles = new Map(data.slides.map((s) => [s.index, s.title]));
  el.questions.replaceChildren(
    ...[...bySlide.entries()]
      .sort(([a], [b]) => a - b)
      .map(([index, asked]) => {
        const group = node("div");
        group.dataset.slide = String(index);
        const title = titles.get(index);
        group.append(node("h3", index ? `Slide ${index}${title ? `: ${title}` : ""}` : "Unknown slide"));
        const list = node("ul");
        list.append(
          ...asked.map((q) => {
            const item = node("li", q.text || "(words removed by the data policy)");
            item.dataset.declined = String(q.declined);
            return item;
          }),
        );
        group.append(list);
        return group;
      }),
  );
}

function renderSessions(data: DeckAnalytics): void {
  el.sessions.replaceChildren(
    ...data.sessions.map((s) => {
      const row = node("tr");
      row.dataset.session = s.session_id;
      const started = s.started_at ? new Date(s.started_at).toLocaleString() : "–";
      const reached = s.max_slide === null ? "–" : `${s.max_slide} (${percent(s.completion)})`;
      const cells = [
        started,
        duration(s.length_seconds),
        reached,
        s.drop_off_slide === null ? "finished" : `slide ${s.drop_off_slide}`,
        String(s.questions),
        String(s.escalations),
      ];
      row.append(...cells.map((text) => node("td", text)));
      return row;
    }),
  );
}

async function load(credential: string): Promise<void> {
  el.status.textContent = "Loading…";
  try {
    const data = await request<DeckAnalytics>(
      `/v1/decks/${encodeURIComponent(deckId)}/analytics?${rangeParams()}`,
      { bearer: credential },
    );
    show(el.keyCard, false);
    show(el.overview, true);
    renderSummary(data);
    renderStrip(data);
    renderDropoff(data);
    renderGaps(data);
    renderQuestions(data);
    renderSessions(data);
    for (const card of [el.slidesCard, el.dropoffCard, el.gapsCard, el.questionsCard, el.sessionsCard]) {
      show(card, true);
    }
    el.status.textContent = data.sessions_count ? "" : "No sessions of this deck in this range.";
    document.body.dataset.loaded = "true";
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
      forget();
      show(el.keyCard, true);
      el.status.textContent =
        error.status === 401
          ? "This link or key is not valid any more (expired or revoked). Ask for a new link."
          : error.message;
      return;
    }
    el.status.textContent = error instanceof ApiError ? error.message : String(error);
  }
}

let credential = takeCredential();
initialRange();
el.keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  credential = el.key.value.trim();
  el.key.value = "";
  remember(credential);
  void load(credential);
});
el.rangeForm.addEventListener("submit", (event) => {
  event.preventDefault();
  if (credential) void load(credential);
});
if (credential) void load(credential);
else show(el.keyCard, true);
