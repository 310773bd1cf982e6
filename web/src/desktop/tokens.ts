// The agent's tokens: signed in with its password, the access token is renewed with the
// single-use refresh token before it expires. Both stay in memory only (a reload signs in
// again), and neither is ever shown or logged.
import { AuthService } from "../gen/switchboard/v1/auth_pb";
import { Code, ConnectError, type Client } from "@connectrpc/connect";

/** Renew this long before the access token expires (at most a fifth of its life). */
const MARGIN_MS = 60_000;
/** After a failed renewal, try again this soon (while the current token still holds). */
const RETRY_MS = 5_000;

export interface TokenEvents {
  /** Renewed; `at` for diagnostics. */
  renewed(at: Date): void;
  /** A renewal failed; `final` when the chain is over (sign in again). */
  failed(error: unknown, final: boolean): void;
}

export class Tokens {
  private access: string | undefined;
  private refreshToken: string | undefined;
  private expiresAt = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private renewing: Promise<boolean> | undefined;
  /** Who the tokens are of: `agent:<id>`. */
  principal = "";

  constructor(
    private readonly auth: () => Client<typeof AuthService>,
    private readonly events: TokenEvents,
  ) {}

  /** The access token to send, if signed in. */
  readonly token = (): string | undefined => this.access;

  /** Signs the agent in. */
  async login(agentId: string, password: string): Promise<void> {
    const answer = await this.auth().login({ principal: { case: "agentId", value: agentId }, password });
    this.take(answer.accessToken, answer.refreshToken, answer.expiresInSecs, answer.principal);
  }

  /** Trades the refresh token for new tokens now (one renewal at a time); false when it
   * failed. */
  renew(): Promise<boolean> {
    this.renewing ??= this.doRenew().finally(() => {
      this.renewing = undefined;
    });
    return this.renewing;
  }

  private async doRenew(): Promise<boolean> {
    const refreshToken = this.refreshToken;
    if (refreshToken === undefined) return false;
    try {
      const answer = await this.auth().refresh({ refreshToken });
      this.take(answer.accessToken, answer.refreshToken, answer.expiresInSecs, answer.principal);
      this.events.renewed(new Date());
      return true;
    } catch (error) {
      // A refused refresh ends the chain; a network failure may pass while the token holds.
      const final = Date.now() + RETRY_MS >= this.expiresAt || isRefusal(error);
      this.events.failed(error, final);
      if (!final) this.schedule(RETRY_MS);
      return false;
    }
  }

  /** Ends the refresh chain on the server and forgets the tokens. */
  async logout(): Promise<void> {
    const refreshToken = this.refreshToken;
    this.forget();
    if (refreshToken !== undefined) await this.auth().logout({ refreshToken });
  }

  /** Forgets the tokens without telling the server. */
  forget(): void {
    clearTimeout(this.timer);
    this.access = undefined;
    this.refreshToken = undefined;
    this.expiresAt = 0;
  }

  private take(access: string, refresh: string, expiresInSecs: bigint, principal: string): void {
    this.access = access;
    this.refreshToken = refresh;
    this.principal = principal;
    const lifeMs = Number(expiresInSecs) * 1000;
    this.expiresAt = Date.now() + lifeMs;
    this.schedule(Math.max(lifeMs - Math.min(MARGIN_MS, lifeMs / 5), 1000));
  }

  private schedule(inMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.renew(), inMs);
  }
}

/** The server said no (as opposed to the network failing). */
function isRefusal(error: unknown): boolean {
  return (
    error instanceof ConnectError &&
    (error.code === Code.Unauthenticated || error.code === Code.PermissionDenied)
  );
}
