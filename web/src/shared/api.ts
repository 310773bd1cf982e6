// The typed clients of every Switchboard service over gRPC-web, and the little every page
// needs around them: the caller's token on each call, and errors a person can read.
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { AdminService } from "../gen/switchboard/v1/admin_pb";
import { AuthService } from "../gen/switchboard/v1/auth_pb";
import { CoreService } from "../gen/switchboard/v1/core_pb";
import { ProcessorService } from "../gen/switchboard/v1/processor_pb";
import { RoutingService } from "../gen/switchboard/v1/routing_pb";
import { WorkflowService } from "../gen/switchboard/v1/workflow_pb";

/** The clients of one server. */
export interface Services {
  readonly baseUrl: string;
  readonly auth: Client<typeof AuthService>;
  readonly core: Client<typeof CoreService>;
  readonly processor: Client<typeof ProcessorService>;
  readonly workflow: Client<typeof WorkflowService>;
  readonly routing: Client<typeof RoutingService>;
  readonly admin: Client<typeof AdminService>;
}

/** Connects to the server at `baseUrl` (e.g. `http://127.0.0.1:50051`); each call carries the
 * access token `token()` gives, when it gives one. */
export function connect(baseUrl: string, token: () => string | undefined): Services {
  const bearer: Interceptor = (next) => (req) => {
    const current = token();
    if (current) req.header.set("authorization", `Bearer ${current}`);
    return next(req);
  };
  const transport = createGrpcWebTransport({ baseUrl, interceptors: [bearer] });
  return {
    baseUrl,
    auth: createClient(AuthService, transport),
    core: createClient(CoreService, transport),
    processor: createClient(ProcessorService, transport),
    workflow: createClient(WorkflowService, transport),
    routing: createClient(RoutingService, transport),
    admin: createClient(AdminService, transport),
  };
}

/** What went wrong, as the server said it: `PERMISSION_DENIED: ...`. */
export function describe(error: unknown): string {
  if (error instanceof ConnectError) {
    return `${codeName(error.code)}: ${error.rawMessage}`;
  }
  return error instanceof Error ? error.message : String(error);
}

/** A status code as gRPC names it (`PERMISSION_DENIED`); connect's enum says `PermissionDenied`. */
export function codeName(code: Code): string {
  const name = Code[code];
  return name === undefined ? String(code) : name.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/** Whether `error` is the server refusing the caller (not a network failure). */
export function isRefusal(error: unknown): boolean {
  return (
    error instanceof ConnectError &&
    [Code.PermissionDenied, Code.Unauthenticated, Code.FailedPrecondition, Code.InvalidArgument, Code.NotFound].includes(error.code)
  );
}
