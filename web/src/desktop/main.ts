// The agent desktop's page: wires the view, the alert region and the controller, and offers
// the controller to the browser console as `switchboardDesktop` (its calls run as this
// desktop, with the same token and the same handling of refusals).
import { Alerts } from "../shared/alerts";
import { byId } from "../shared/dom";
import { Desktop } from "./desktop";
import { DesktopView } from "./view";

const view = new DesktopView();
const alerts = new Alerts(byId("alerts"));
const desktop = new Desktop(view, alerts, location.origin);
view.bind(desktop);
(window as unknown as { switchboardDesktop: Desktop }).switchboardDesktop = desktop;
void desktop.start();
