// The participant's LiveKit token: taken from the URL fragment once, then kept in this tab's
// sessionStorage so a reload works while the address bar no longer shows it.

export interface TokenClaims {
  exp: number;
  name: string | undefined;
  identity: string | undefined;
  sessionId: string | undefined;
  role: string | undefined;
}

const storageKey = (sessionId: string): string => `podium.token.${sessionId}`;

export function takeToken(sessionId: string): string | null {
  const fragment = new URLSearchParams(window.location.hash.replace(/^#/, ""));
  const fromUrl = fragment.get("token");
  if (fromUrl) {
    try {
      sessionStorage.setItem(storageKey(sessionId), fromUrl);
    } catch {
      // storage disabled: the page still works until it is reloaded
    }
    history.replaceState(null, "", window.location.pathname + window.location.search);
    return fromUrl;
  }
  try {
    return sessionStorage.getItem(storageKey(sessionId));
  } catch {
    return null;
  }
}

export function forgetToken(sessionId: string): void {
  try {
    sessionStorage.removeItem(storageKey(sessionId));
  } catch {
    // nothing to forget
  }
}

/** Reads (does not verify) the claims the page needs for its messages; the server verifies. */
export function readClaims(token: string): TokenClaims | null {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const json = atob(parts[1].replace(/-/g, "+").replace(/_/g, "/"));
    const bytes = Uint8Array.from(json, (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes)) as {
      exp?: number;
      name?: string;
      sub?: string;
      attributes?: Record<string, string>;
    };
    if (typeof claims.exp !== "number") return null;
    return {
      exp: claims.exp,
      name: claims.name,
      identity: claims.sub,
      sessionId: claims.attributes?.["podium.session_id"],
      role: claims.attributes?.["podium.role"],
    };
  } catch {
    return null;
  }
}
