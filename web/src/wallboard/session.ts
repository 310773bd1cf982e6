// The supervisor's sign-in: an account's tokens, held in memory only (a reload signs in again),
// the access token refreshed before it expires.
import { Role } from "../gen/switchboard/v1/admin_pb";
import type { Services } from "../shared/api";

export class Session {
  private access: string | undefined;
  private refresh: string | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** `account:<id>` once signed in. */
  principal = "";

  /** `onLost`: the session ended without the user asking (a refresh was refused). */
  constructor(
    private readonly api: () => Services,
    private readonly onLost: (error: unknown) => void,
  ) {}

  token = (): string | undefined => this.access;

  /** Signs `accountId` in; refuses an account that may not oversee agents. */
  async signIn(accountId: string, secret: string): Promise<void> {
    const r = await this.api().auth.login({ principal: { case: "accountId", value: accountId }, password: secret });
    const oversees = r.roles.includes(Role.SUPERVISOR) || r.roles.includes(Role.ADMIN);
    this.keep(r.accessToken, r.refreshToken, r.expiresInSecs);
    this.principal = r.principal;
    if (!oversees) {
      await this.signOut();
      throw new Error(`${r.principal} is neither a supervisor nor an admin: the wallboard needs ROLE_SUPERVISOR`);
    }
  }

  /** Trades the refresh token now (after an UNAUTHENTICATED answer, or on the timer). */
  async renew(): Promise<void> {
    if (!this.refresh) throw new Error("not signed in");
    const r = await this.api().auth.refresh({ refreshToken: this.refresh });
    this.keep(r.accessToken, r.refreshToken, r.expiresInSecs);
  }

  async signOut(): Promise<void> {
    const refresh = this.refresh;
    this.forget();
    if (refresh) await this.api().auth.logout({ refreshToken: refresh }).catch(() => undefined);
  }

  get signedIn(): boolean {
    return this.access !== undefined;
  }

  private keep(access: string, refresh: string, expiresInSecs: bigint): void {
    this.access = access;
    this.refresh = refresh;
    clearTimeout(this.timer);
    // Refresh at four fifths of the token's life, so calls never carry an expired one.
    const delay = Math.max(5, Number(expiresInSecs) * 0.8) * 1000;
    this.timer = setTimeout(() => {
      this.renew().catch((error: unknown) => {
        this.forget();
        this.onLost(error);
      });
    }, delay);
  }

  private forget(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.access = undefined;
    this.refresh = undefined;
    this.principal = "";
  }
}
