import { connect } from "../shared/api";
const api = connect(location.origin, () => undefined);
void api.core.getServerStatus({}).then((s) => {
  document.querySelector("#status")!.textContent = `clients ${s.clientCount}`;
});
