// The API client: every call sends the stored key; errors carry the problem detail.

const KEY_STORAGE = "cpm.apiKey";
const BASE = "/api/v1";

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

export function storedKey() {
  return localStorage.getItem(KEY_STORAGE);
}

export function storeKey(key) {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
}

async function problemDetail(response) {
  try {
    const body = await response.json();
    return body.detail || body.title || response.statusText;
  } catch {
    return response.statusText;
  }
}

export async function request(path, { method = "GET", body, key = storedKey(), params } = {}) {
  const url = new URL(BASE + path, location.origin);
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  const headers = { Accept: "application/json" };
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw new ApiError(response.status, await problemDetail(response));
  return response.json();
}

// The caller's role. Uses `GET /api/v1/whoami` when the API has it (looked up in the
// OpenAPI document, so a missing route never costs a failed request); otherwise the key
// is checked with a read every role may do, and the role stays unknown: the API then
// decides each action and the dashboard shows its answer.
let whoamiAvailable;

async function hasWhoami() {
  if (whoamiAvailable === undefined) {
    try {
      const response = await fetch("/openapi.json");
      const spec = response.ok ? await response.json() : { paths: {} };
      whoamiAvailable = Boolean(spec.paths && spec.paths[`${BASE}/whoami`]);
    } catch {
      whoamiAvailable = false;
    }
  }
  return whoamiAvailable;
}

export async function whoami(key) {
  if (await hasWhoami()) {
    const me = await request("/whoami", { key });
    let checkpoints = me.checkpoints ?? me.checkpoint_ids ?? null;
    if (typeof checkpoints === "string") checkpoints = checkpoints.split(",").filter(Boolean);
    return { role: me.role, name: me.name || "", checkpoints };
  }
  await request("/sites", { key });
  return { role: null, name: "", checkpoints: null };
}

export const api = {
  sites: () => request("/sites"),
  board: () => request("/checkpoints"),
  checkpoint: (id, recent = 30) =>
    request(`/checkpoints/${encodeURIComponent(id)}`, { params: { recent } }),
  coverage: (params) => request("/metrics/coverage", { params }),
  alerts: (params) => request("/alerts", { params }),
  alert: (id) => request(`/alerts/${id}`),
  acknowledge: (id, note) =>
    request(`/alerts/${id}/acknowledge`, { method: "POST", body: { note: note || null } }),
  resolve: (id, outcome, note, decidedBy) =>
    request(`/alerts/${id}/resolve`, {
      method: "POST",
      body: { outcome, note: note || null, decided_by: decidedBy || null },
    }),
};

export function streamUrl(key, after) {
  const url = new URL(`${BASE}/alerts/stream`, location.origin);
  url.searchParams.set("api_key", key);
  if (after !== undefined && after !== null) url.searchParams.set("after", after);
  return url.toString();
}
