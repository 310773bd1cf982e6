// Which server the desktop uses, as the hub's desktops choose: ask every configured server
// for its status and take the least-loaded one that accepts clients. The list comes from
// the page's server (`/web-config.json`); an empty list means this page's own origin.
import { ServiceStatus, type GetServerStatusResponse } from "../gen/switchboard/v1/core_pb";
import { connect, describe } from "../shared/api";

/** One server as the desktop saw it. */
export interface ServerView {
  url: string;
  status?: GetServerStatusResponse;
  /** Why it could not be asked. */
  error?: string;
}

/** How long one server may take to say how it is. */
const STATUS_TIMEOUT_MS = 3000;

/** The configured servers; this origin when there are none. */
export async function configuredServers(origin: string): Promise<string[]> {
  const answer = await fetch(new URL("/web-config.json", origin), { cache: "no-store" });
  if (!answer.ok) throw new Error(`/web-config.json: HTTP ${answer.status}`);
  const config = (await answer.json()) as { servers?: unknown };
  const servers = Array.isArray(config.servers)
    ? config.servers.filter((s): s is string => typeof s === "string" && s !== "")
    : [];
  return servers.length > 0 ? servers.map((s) => s.replace(/\/+$/, "")) : [origin];
}

/** Asks every server for its status, all at once. */
export function survey(urls: string[]): Promise<ServerView[]> {
  return Promise.all(
    urls.map(async (url): Promise<ServerView> => {
      try {
        const status = await connect(url, () => undefined).core.getServerStatus(
          {},
          { timeoutMs: STATUS_TIMEOUT_MS },
        );
        return { url, status };
      } catch (error) {
        return { url, error: describe(error) };
      }
    }),
  );
}

/** Whether a server takes new desktops. */
export function accepts(server: ServerView): boolean {
  return (
    server.status !== undefined &&
    server.status.acceptingClients &&
    server.status.status === ServiceStatus.IN_SERVICE
  );
}

/** The least-loaded server that accepts clients (the first listed on a tie). */
export function pick(servers: ServerView[]): ServerView | undefined {
  let best: ServerView | undefined;
  for (const server of servers) {
    if (!accepts(server)) continue;
    if (best === undefined || server.status!.clientCount < best.status!.clientCount) best = server;
  }
  return best;
}
