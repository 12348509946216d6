// Entry point: wires up what the page (body[data-page]) needs. Pages work without scripts; these
// add charts, panels and comfort. Nothing here writes user data as HTML: only textContent.
import { initCommon } from "./common.js";
import { initTable } from "./table.js";
import { initCharts } from "./charts.js";
import { initPanels } from "./panels.js";
import { initWhoami } from "./whoami.js";

const page = document.body.dataset.page;
initCommon();
initWhoami();
if (page === "table") initTable();
if (page === "experiment" || page === "compare") initCharts();
if (page === "compare") initPanels();
