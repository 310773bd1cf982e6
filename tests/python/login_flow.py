#!/usr/bin/env python3
"""Runs the seed's media-bar login flow against a Switchboard server with stubs generated
from proto/ (see scripts/test-tools.sh), asserting every answer on the way; then ends
`Connect` streams the two ways a desktop does: a cancelled call keeps its client (resumable),
a `Goodbye` frame unregisters it.

It signs in as a real client does: the first admin (`AuthService.Login` with the one-time
secret the server's first start wrote to a file) creates the agent, then the agent signs in
with its password and the desktop's every call carries `authorization: Bearer <access token>`.
At the end the agent refreshes its tokens and signs out.

Exits 0 and prints `login flow: OK` last on success; exits 1 with `login flow: FAILED ...`
otherwise. Every call and every wait is bounded, so it cannot hang.
"""

import argparse
import os
import queue
import sys
import threading
import uuid
from pathlib import Path

RPC_TIMEOUT = 10.0  # seconds for each unary call and each wait for a watched event
WATCH_DEADLINE = 60.0  # the whole watch stream; the flow is far shorter

CAPABILITY_KEYS = {
    "channel-groups-max-per-agent",
    "single-channels-media-types",
    "channel-actions",
    "channel-groups-media-types",
    "channel-groups-supported",
    "single-channels-supported",
}


class FlowError(Exception):
    pass


def expect(condition, message):
    # Not `assert`: those vanish under `python -O`.
    if not condition:
        raise FlowError(message)


def pyproto_dir():
    from_env = os.environ.get("SWITCHBOARD_PYPROTO")
    if from_env:
        return Path(from_env)
    return Path(__file__).resolve().parents[2] / "target" / "test-tools" / "pyproto"


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Run the seed's login flow (status, register, bind, prepare, watch, "
        "login) against a Switchboard server."
    )
    parser.add_argument("--target", required=True, help="server address, e.g. 127.0.0.1:50051")
    parser.add_argument("--agent-id", required=True, help="agent to create and log in")
    parser.add_argument("--password", required=True, help="the agent's password")
    parser.add_argument(
        "--admin-secret-file",
        required=True,
        help="the file holding the first admin's one-time secret "
        "(<data-dir>/bootstrap-admin.secret or --bootstrap-secret-file)",
    )
    parser.add_argument(
        "--admin-id", default="admin", help="the first admin's account id (default: %(default)s)"
    )
    parser.add_argument(
        "--processor-name",
        default="Switchboard",
        help="expected processor service name (default: %(default)s)",
    )
    return parser.parse_args(argv)


def load_stubs():
    path = pyproto_dir()
    if not (path / "switchboard" / "v1" / "core_pb2.py").is_file():
        raise FlowError(f"generated stubs missing in {path}: run scripts/test-tools.sh")
    sys.path.insert(0, str(path))
    import grpc  # here, not at the top, so --help works without the venv
    from switchboard.v1 import admin_pb2, auth_pb2, core_pb2, processor_pb2, workflow_pb2
    from switchboard.v1 import admin_pb2_grpc, auth_pb2_grpc, core_pb2_grpc, processor_pb2_grpc
    from switchboard.v1 import workflow_pb2_grpc

    return {
        "grpc": grpc,
        "admin": admin_pb2,
        "auth": auth_pb2,
        "auth_grpc": auth_pb2_grpc,
        "core": core_pb2,
        "processor": processor_pb2,
        "workflow": workflow_pb2,
        "admin_grpc": admin_pb2_grpc,
        "core_grpc": core_pb2_grpc,
        "processor_grpc": processor_pb2_grpc,
        "workflow_grpc": workflow_pb2_grpc,
    }


class SessionWatch:
    """Follows WatchSessionState on a background thread, handing events over a queue."""

    def __init__(self, stub, request, metadata=()):
        self._call = stub.WatchSessionState(request, metadata=metadata, timeout=WATCH_DEADLINE)
        self._events = queue.Queue()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        try:
            for frame in self._call:
                self._events.put(("event", frame))
            self._events.put(("end", None))
        except Exception as error:  # surfaced to the main thread by next_event
            self._events.put(("error", error))

    def next_event(self, what):
        try:
            kind, value = self._events.get(timeout=RPC_TIMEOUT)
        except queue.Empty:
            raise FlowError(f"no session event within {RPC_TIMEOUT:.0f} s while waiting for {what}")
        if kind == "error":
            if self._cancelled(value):
                raise FlowError(f"watch cancelled while waiting for {what}")
            raise FlowError(f"watch failed while waiting for {what}: {describe_error(value)}")
        if kind == "end":
            raise FlowError(f"watch stream ended while waiting for {what}")
        return value

    @staticmethod
    def _cancelled(error):
        code = getattr(error, "code", None)
        return callable(code) and code().name == "CANCELLED"

    def close(self):
        self._call.cancel()
        self._thread.join(timeout=RPC_TIMEOUT)


class ConnectStream:
    """A `Connect` call whose frames come from a queue: `send` queues one, `end` closes the
    request side. Reads are bounded by the call's deadline."""

    _END = object()

    def __init__(self, stub, metadata=()):
        self._requests = queue.Queue()
        self._call = stub.Connect(self._frames(), metadata=metadata, timeout=WATCH_DEADLINE)

    def _frames(self):
        while True:
            frame = self._requests.get()
            if frame is self._END:
                return
            yield frame

    def send(self, frame):
        self._requests.put(frame)

    def end(self):
        self._requests.put(self._END)

    def next(self):
        return next(self._call)

    def rest(self):
        """Every frame until the server ends the stream; raises if it ends with an error."""
        return list(self._call)

    def code(self):
        return self._call.code()

    def cancel(self):
        """Cancels the call (RST_STREAM with CANCEL), as a deadline or a page reload does."""
        self._call.cancel()
        self.end()


def describe_error(error):
    code = getattr(error, "code", None)
    details = getattr(error, "details", None)
    if callable(code) and callable(details):
        return f"{code().name}: {details()}"
    return repr(error)


def bearer(token):
    """The call metadata that signs a call in with `token`."""
    return (("authorization", f"Bearer {token}"),)


def action_changes(pb, event):
    enable = pb["workflow"].ACTION_CHANGE_TYPE_ENABLE
    disable = pb["workflow"].ACTION_CHANGE_TYPE_DISABLE
    names = {enable: "ENABLE", disable: "DISABLE"}
    return {a.name: names.get(a.type, f"type {a.type}") for a in event.actions}


def enabled_actions(actions):
    return {a.name: a.enabled for a in actions}


class Flow:
    def __init__(self, pb, args):
        self.pb = pb
        self.args = args
        self.step = "connect"
        self.responses = []  # every answer, to prove none carries the password
        self.resource_id = None
        try:
            self.admin_secret = Path(args.admin_secret_file).read_text().strip()
        except OSError as error:
            raise FlowError(f"cannot read the first admin's secret: {error}")
        expect(self.admin_secret != "", f"{args.admin_secret_file} is empty")
        # The signed-in principal's call metadata; none before the first sign-in.
        self.metadata = ()
        grpc = pb["grpc"]
        self.channel = grpc.insecure_channel(args.target)
        self.auth = pb["auth_grpc"].AuthServiceStub(self.channel)
        self.admin = pb["admin_grpc"].AdminServiceStub(self.channel)
        self.core = pb["core_grpc"].CoreServiceStub(self.channel)
        self.processor = pb["processor_grpc"].ProcessorServiceStub(self.channel)
        self.workflow = pb["workflow_grpc"].WorkflowServiceStub(self.channel)

    def call(self, method, request):
        """A unary call as the signed-in principal."""
        response = method(request, metadata=self.metadata, timeout=RPC_TIMEOUT)
        self.check_no_password(response)
        return response

    def check_no_password(self, message):
        self.responses.append(message)
        text = str(message)
        expect(
            self.args.password not in text and self.admin_secret not in text,
            f"the password or the admin's secret appears in a {type(message).__name__}",
        )

    def sign_in(self, password, **principal):
        """`AuthService.Login`; its tokens, after checking the answer."""
        (kind, principal_id), = principal.items()
        login = self.call(
            self.auth.Login, self.pb["auth"].LoginRequest(password=password, **principal)
        )
        prefix = "agent" if kind == "agent_id" else "account"
        expect(login.access_token != "", "Login gave no access token")
        expect(login.refresh_token != "", "Login gave no refresh token")
        expect(login.expires_in_secs > 0, f"the access token expires in {login.expires_in_secs} s")
        expect(
            login.principal == f"{prefix}:{principal_id}",
            f"signed in as {login.principal!r}, not {prefix}:{principal_id}",
        )
        return login

    def expect_refused(self, method, request, code, what):
        try:
            method(request, metadata=self.metadata, timeout=RPC_TIMEOUT)
        except self.pb["grpc"].RpcError as error:
            expect(error.code() == code, f"{what}: {describe_error(error)}")
            return
        raise FlowError(f"{what}: the call was not refused")

    def run(self):
        pb, args = self.pb, self.args
        core, proc, wf = pb["core"], pb["processor"], pb["workflow"]
        in_service = core.SERVICE_STATUS_IN_SERVICE

        self.step = "connect"
        try:
            pb["grpc"].channel_ready_future(self.channel).result(timeout=RPC_TIMEOUT)
        except pb["grpc"].FutureTimeoutError:
            raise FlowError(f"could not connect to {args.target} within {RPC_TIMEOUT:.0f} s")

        self.step = "0 Login as the first admin"
        admin_login = self.sign_in(self.admin_secret, account_id=args.admin_id)
        expect(
            pb["admin"].ROLE_ADMIN in admin_login.roles,
            f"the first admin's roles are {list(admin_login.roles)}",
        )

        self.step = "0 UpsertAgent without a token"
        agent_request = pb["admin"].UpsertAgentRequest(
            agent=pb["admin"].Agent(
                agent_id=args.agent_id, display_name="Rajat", password=args.password
            )
        )
        self.expect_refused(
            self.admin.UpsertAgent,
            agent_request,
            pb["grpc"].StatusCode.UNAUTHENTICATED,
            "UpsertAgent without a token",
        )

        self.step = "0 UpsertAgent"
        self.metadata = bearer(admin_login.access_token)
        upserted = self.call(
            self.admin.UpsertAgent,
            agent_request,
        )
        expect(upserted.agent.agent_id == args.agent_id, f"upserted agent is {upserted.agent.agent_id!r}")
        expect(upserted.agent.password == "", "UpsertAgent echoed a password")

        # From here on the desktop is the agent's own.
        self.step = "0 Login as the agent"
        self.metadata = ()
        self.agent_login = self.sign_in(args.password, agent_id=args.agent_id)
        expect(
            pb["admin"].ROLE_AGENT in self.agent_login.roles,
            f"the agent's roles are {list(self.agent_login.roles)}",
        )
        self.metadata = bearer(self.agent_login.access_token)
        self.step = "0 UpsertAgent as the agent"
        self.expect_refused(
            self.admin.UpsertAgent,
            agent_request,
            pb["grpc"].StatusCode.PERMISSION_DENIED,
            "UpsertAgent as an agent",
        )

        self.step = "1 GetServerStatus"
        status = self.call(self.core.GetServerStatus, core.GetServerStatusRequest())
        expect(status.status == in_service, f"server status is {core.ServiceStatus.Name(status.status)}")
        expect(status.accepting_clients, "server is not accepting clients")
        expect(status.instance_domain != "", "server has no instance_domain")
        expect(status.server_id != "", "server has no server_id")
        clients_before = status.client_count

        self.step = "2 RegisterClient"
        registered = self.call(
            self.core.RegisterClient,
            core.RegisterClientRequest(client_name=f"login_flow.py {args.agent_id}"),
        )
        client_id = registered.client_id
        expect(client_id != "", "RegisterClient returned no client_id")

        self.step = "2 GetServerStatus after registering"
        status = self.call(self.core.GetServerStatus, core.GetServerStatusRequest())
        expect(
            status.client_count >= clients_before + 1,
            f"client_count went from {clients_before} to {status.client_count} on registering",
        )

        self.step = "2 ListServices"
        listed = self.call(self.core.ListServices, core.ListServicesRequest())
        expect(len(listed.services) == 2, f"expected 2 services, got {len(listed.services)}: {listed}")
        processor, manager = listed.services
        expect(
            processor.service_type == "switchboard.processor",
            f"first service has type {processor.service_type!r}, expected the processor",
        )
        try:
            uuid.UUID(processor.service_id)
        except ValueError:
            raise FlowError(f"processor id {processor.service_id!r} is not a UUID")
        expect(
            processor.service_name == args.processor_name,
            f"processor name is {processor.service_name!r}, expected {args.processor_name!r}",
        )
        expect(status.server_id == processor.service_id, "server_id differs from the processor's id")
        expect(manager.service_id == "WorkflowManager", f"second service id is {manager.service_id!r}")
        expect(manager.service_name == "WorkflowManager", f"workflow name is {manager.service_name!r}")
        expect(
            manager.service_type == "switchboard.workflow.manager",
            f"workflow type is {manager.service_type!r}",
        )
        for service in listed.services:
            expect(service.status == in_service, f"{service.service_id} is not in service")
            expect(service.accepting_clients, f"{service.service_id} is not accepting clients")

        for service in (processor, manager):
            self.step = f"3 BindService {service.service_id}"
            bound = self.call(
                self.core.BindService,
                core.BindServiceRequest(client_id=client_id, service_id=service.service_id),
            )
            expect(bound.service_id == service.service_id, f"bound service {bound.service_id!r}")
            expect(bound.service_name == service.service_name, f"bound name {bound.service_name!r}")
            expect(bound.service_type == service.service_type, f"bound type {bound.service_type!r}")

        self.step = "4 GetCapabilities"
        caps = self.call(
            self.processor.GetCapabilities,
            proc.GetCapabilitiesRequest(service_id=processor.service_id),
        )
        expect(
            set(caps.capabilities.keys()) == CAPABILITY_KEYS,
            f"capability keys are {sorted(caps.capabilities.keys())}",
        )

        self.step = "5 PrepareSession"
        prepared = self.call(
            self.processor.PrepareSession,
            proc.PrepareSessionRequest(
                service_id=processor.service_id,
                agent=proc.AgentCredentials(id=args.agent_id, password=args.password),
                model="",
                override=False,
                cti=processor.service_id,
            ),
        )
        expect(
            prepared.result == proc.PREPARE_SESSION_RESULT_SUCCESS,
            f"PrepareSession answered {proc.PrepareSessionResult.Name(prepared.result)}: {prepared.message}",
        )
        resource_id = f"{processor.service_name}-{args.agent_id}"
        self.resource_id = resource_id
        expect(
            prepared.resource_id == resource_id,
            f"resource_id is {prepared.resource_id!r}, expected {resource_id!r}",
        )

        # Read the state before binding the workflow session and watch from the next
        # revision: the bind's `state.updated` event is then delivered whenever the stream
        # actually starts (the server replays journaled events).
        self.step = "5 GetSessionState before binding"
        before = self.call(self.workflow.GetSessionState, wf.GetSessionStateRequest(resource_id=resource_id))
        expect(before.view_state == "initial", f"view state is {before.view_state!r}, expected 'initial'")
        expect(
            enabled_actions(before.actions).get("session.login") is True,
            f"session.login is not enabled: {enabled_actions(before.actions)}",
        )

        self.step = "7 WatchSessionState"
        watch = SessionWatch(
            self.workflow,
            wf.WatchSessionStateRequest(resource_id=resource_id, start_revision=before.revision + 1),
            metadata=self.metadata,
        )
        try:
            self.bind_and_login(processor, manager, client_id, resource_id, before.revision, watch)
            self.connect_endings()
            self.refresh_and_sign_out()
        finally:
            watch.close()
            self.channel.close()

    def greeting(self, stream, what):
        frame = stream.next()
        self.check_no_password(frame)
        expect(frame.WhichOneof("frame") == "connected", f"{what}: first frame is {frame}")
        return frame.connected

    def client_count(self):
        return self.call(self.core.GetServerStatus, self.pb["core"].GetServerStatusRequest()).client_count

    def connect_endings(self):
        """A cancelled `Connect` keeps its client for the grace period; a `Goodbye` frame ends
        it for good, and only then does the stream end OK."""
        core, grpc = self.pb["core"], self.pb["grpc"]
        clients_before = self.client_count()

        self.step = "9 Connect"
        first = ConnectStream(self.core, metadata=self.metadata)
        client_id = self.greeting(first, "Connect").client_id
        expect(client_id != "", "Connect gave no client_id")
        expect(self.client_count() == clients_before + 1, "the Connect client is not counted")

        self.step = "9 Connect cancelled, then resumed"
        first.cancel()
        resume = self.metadata + (("switchboard-client-id", client_id),)
        back = ConnectStream(self.core, metadata=resume)
        greeting = self.greeting(back, "resumed Connect")
        expect(greeting.resumed, "a cancelled Connect's client was not resumed")
        expect(greeting.client_id == client_id, f"resumed {greeting.client_id!r}, not {client_id!r}")

        self.step = "9 Connect Goodbye"
        back.send(core.ConnectRequest(goodbye=core.Goodbye()))
        back.end()
        for frame in back.rest():
            self.check_no_password(frame)
            expect(frame.WhichOneof("frame") == "event", f"after the goodbye: {frame}")
        expect(back.code() == grpc.StatusCode.OK, f"the goodbye ended with {back.code()}")
        expect(self.client_count() == clients_before, "the client is still counted after its goodbye")

        self.step = "9 Connect resuming after the goodbye"
        gone = ConnectStream(self.core, metadata=resume)
        gone.end()
        try:
            frame = gone.next()
            raise FlowError(f"a client that said goodbye was resumed: {frame}")
        except grpc.RpcError as error:
            expect(
                error.code() == grpc.StatusCode.NOT_FOUND,
                f"resuming after the goodbye: {describe_error(error)}",
            )

    def refresh_and_sign_out(self):
        """The agent trades its refresh token for new tokens, which work; then signs out, after
        which its refresh token is refused."""
        auth, grpc = self.pb["auth"], self.pb["grpc"]
        self.step = "10 Refresh"
        refreshed = self.call(
            self.auth.Refresh, auth.RefreshRequest(refresh_token=self.agent_login.refresh_token)
        )
        expect(refreshed.access_token != "", "Refresh gave no access token")
        expect(
            refreshed.refresh_token not in ("", self.agent_login.refresh_token),
            "Refresh gave no new refresh token",
        )
        expect(
            refreshed.principal == self.agent_login.principal,
            f"refreshed as {refreshed.principal!r}",
        )
        self.metadata = bearer(refreshed.access_token)
        me = self.call(self.auth.WhoAmI, auth.WhoAmIRequest())
        expect(me.principal == self.agent_login.principal, f"WhoAmI says {me.principal!r}")

        self.step = "10 Logout"
        self.call(self.auth.Logout, auth.LogoutRequest(refresh_token=refreshed.refresh_token))
        self.expect_refused(
            self.auth.Refresh,
            auth.RefreshRequest(refresh_token=refreshed.refresh_token),
            grpc.StatusCode.UNAUTHENTICATED,
            "Refresh after signing out",
        )

    def bind_and_login(self, processor, manager, client_id, resource_id, revision, watch):
        core, wf = self.pb["core"], self.pb["workflow"]
        expected_types = {
            processor.service_id: "switchboard.processor.session",
            manager.service_id: "switchboard.workflow.session",
        }
        bind_revision = 0
        for service in (processor, manager):
            self.step = f"6 BindResource {service.service_id}"
            bound = self.call(
                self.core.BindResource,
                core.BindResourceRequest(
                    client_id=client_id, service_id=service.service_id, resource_id=resource_id
                ),
            )
            expect(bound.service_id == service.service_id, f"bound service {bound.service_id!r}")
            expect(bound.resource_id == resource_id, f"bound resource {bound.resource_id!r}")
            expect(
                bound.resource_type == expected_types[service.service_id],
                f"resource type is {bound.resource_type!r}",
            )
            bind_revision = bound.revision

        self.step = "7 state.updated on binding the workflow session"
        event = self.wait_for_state(watch, "initial", revision)
        expect(event.revision <= bind_revision, f"bind event at {event.revision}, bind at {bind_revision}")
        changes = action_changes(self.pb, event)
        expect(changes.get("session.login") == "ENABLE", f"actions on binding: {changes}")
        expect(changes.get("session.logout") == "DISABLE", f"actions on binding: {changes}")

        self.step = "8 InvokeAction session.login"
        invoked = self.call(
            self.workflow.InvokeAction,
            wf.InvokeActionRequest(resource_id=resource_id, action="session.login"),
        )
        expect(invoked.view_state == "logged_in", f"view state is {invoked.view_state!r} after login")
        actions = enabled_actions(invoked.actions)
        expect(actions.get("session.login") is False, f"actions after login: {actions}")
        expect(actions.get("session.logout") is True, f"actions after login: {actions}")

        self.step = "8 state.updated after login"
        logged_in = self.wait_for_state(watch, "logged_in", event.revision)
        expect(
            logged_in.revision <= invoked.revision,
            f"login event at {logged_in.revision}, InvokeAction at {invoked.revision}",
        )
        changes = action_changes(self.pb, logged_in)
        expect(changes.get("session.login") == "DISABLE", f"actions after login: {changes}")
        expect(changes.get("session.logout") == "ENABLE", f"actions after login: {changes}")

        self.step = "8 GetSessionState after login"
        after = self.call(self.workflow.GetSessionState, wf.GetSessionStateRequest(resource_id=resource_id))
        expect(after.view_state == "logged_in", f"view state is {after.view_state!r} after login")
        expect(after.revision >= invoked.revision, f"state revision {after.revision} < {invoked.revision}")

    def wait_for_state(self, watch, view_state, after_revision):
        """Reads events until a `state.updated` with `view_state`; every event must be newer
        than the last one seen and belong to this session."""
        last = after_revision
        what = f"state.updated with view_state {view_state!r}"
        while True:
            frame = watch.next_event(what)
            self.check_no_password(frame)
            event = frame.event
            expect(event.revision > last, f"event revision {event.revision} not after {last}")
            last = event.revision
            expect(
                event.target == self.resource_id,
                f"event for {event.target!r} on the watch of {self.resource_id!r}",
            )
            if event.name == "state.updated" and event.view_state == view_state:
                return event
            expect(
                event.name == "state.updated",
                f"unexpected {event.name!r} event while waiting for {what}",
            )


def main(argv):
    args = parse_args(argv)
    flow = None
    try:
        pb = load_stubs()
        flow = Flow(pb, args)
        flow.run()
    except FlowError as error:
        step = flow.step if flow else "setup"
        print(f"login flow: FAILED at step {step}: {error}", file=sys.stderr)
        return 1
    except Exception as error:
        step = flow.step if flow else "setup"
        print(f"login flow: FAILED at step {step}: {describe_error(error)}", file=sys.stderr)
        return 1
    print(
        f"checked {len(flow.responses)} responses and events; "
        "none contains the password or the admin's secret"
    )
    print("login flow: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
