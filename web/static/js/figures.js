// The show's figures and its timeline chart (plain SVG): viewers, purchases, pins and sales.
import { api, el, money, siteHeader } from "./api.js";

const $ = (id) => document.getElementById(id);
const streamId = Number(location.pathname.split("/")[2]);
const SVG = "http://www.w3.org/2000/svg";
const W = 800, H = 260, PAD = { left: 40, right: 12, top: 16, bottom: 28 };

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function tile(value, label, id) {
  return el("div", { id }, el("b", {}, value), label);
}

function gross(list) {
  return list.length ? list.map((m) => money(m.amount, m.currency)).join(" + ") : money(0);
}

function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function draw(t) {
  const chart = $("chart");
  chart.replaceChildren(chart.querySelector("desc") || svg("desc", {}, "Viewers and purchases over time"));
  const span = Math.max(1, t.end - t.start);
  const x = (ms) => PAD.left + ((ms - t.start) / span) * (W - PAD.left - PAD.right);
  const maxViewers = Math.max(1, ...t.viewers.map((p) => p[1]));
  const maxUnits = Math.max(1, ...t.purchases.map((p) => p.units));
  const plotH = H - PAD.top - PAD.bottom;
  const y = (v) => PAD.top + plotH - (v / maxViewers) * plotH;
  chart.append(
    svg("line", { class: "axis", x1: PAD.left, y1: H - PAD.bottom, x2: W - PAD.right, y2: H - PAD.bottom }),
    svg("line", { class: "axis", x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: H - PAD.bottom }),
    svg("text", { x: 4, y: PAD.top + 4 }, String(maxViewers)),
    svg("text", { x: 4, y: H - PAD.bottom }, "0"),
    svg("text", { x: PAD.left, y: H - 8 }, clock(t.start)),
    svg("text", { x: W - PAD.right - 40, y: H - 8 }, clock(t.end)),
  );
  // Purchases: a bar per bucket, its height the units bought (scaled to the tallest bucket).
  const barW = Math.max(3, (t.bucket_ms / span) * (W - PAD.left - PAD.right));
  for (const p of t.purchases) {
    const h = (p.units / maxUnits) * plotH * 0.5;
    const bar = svg("rect", { class: "purchase", x: x(p.at), y: H - PAD.bottom - h, width: barW, height: h });
    bar.append(svg("title", {}, `${p.units} units in ${p.orders} orders at ${clock(p.at)}`));
    chart.append(bar);
  }
  for (const m of t.moments) {
    if (m.kind !== "pin" && m.kind !== "sale") continue;
    const line = svg("line", { class: m.kind, x1: x(m.at), y1: PAD.top, x2: x(m.at), y2: H - PAD.bottom, "data-kind": m.kind });
    line.append(svg("title", {}, `${m.kind === "pin" ? "Pinned" : "Flash sale"}: ${m.label} at ${clock(m.at)}`));
    chart.append(line, svg("text", { x: x(m.at) + 3, y: PAD.top + (m.kind === "pin" ? 10 : 24) }, m.kind));
  }
  if (t.viewers.length) {
    const points = t.viewers.map(([at, v]) => `${x(at).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    chart.append(svg("polyline", { class: "viewers", points }));
    if (t.viewers.length === 1) {
      const [at, v] = t.viewers[0];
      chart.append(svg("circle", { class: "purchase", cx: x(at), cy: y(v), r: 3 }));
    }
  }
  chart.querySelector("desc").textContent =
    `Viewers (peak ${maxViewers}) and purchases from ${clock(t.start)} to ${clock(t.end)}; ` +
    `${t.moments.filter((m) => m.kind === "pin").length} pins, ${t.moments.filter((m) => m.kind === "sale").length} flash sales.`;
}

async function load() {
  const { figures: f } = await api("GET", `/api/streams/${streamId}/figures`);
  $("status").textContent = f.status;
  $("status").className = `badge ${f.status}`;
  $("tiles").replaceChildren(
    tile(gross(f.gross), "gross sales", "fig-gross"),
    tile(f.units, "units", "fig-units"),
    tile(f.orders, "orders", "fig-orders"),
    tile(f.buyers, "buyers", "fig-buyers"),
    tile(f.peak_viewers, "peak viewers", "fig-peak"),
    tile(f.average_viewers, "average viewers", "fig-average"),
    tile(f.conversion === null ? "–" : `${(f.conversion * 100).toFixed(1)} %`, "conversion", "fig-conversion"),
  );
  $("products").replaceChildren(...(f.products.length
    ? f.products.map((p) => el("tr", {}, el("td", {}, p.title), el("td", {}, p.units), el("td", {}, p.orders),
        el("td", {}, gross(Object.entries(p.gross).map(([currency, amount]) => ({ amount, currency }))))))
    : [el("tr", {}, el("td", { colspan: 4, class: "muted" }, "Nothing sold yet."))]));
  draw(f.timeline);
  return f;
}

(async () => {
  $("studio-link").href = `/studio/${streamId}`;
  const me = await siteHeader();
  if (!me) {
    location.href = "/login?next=" + encodeURIComponent(location.pathname);
    return;
  }
  try {
    const f = await load();
    if (f.status !== "ended") {
      // Refreshed every 15 s until the show ends (its figures are final then).
      const timer = setInterval(async () => {
        try {
          if ((await load()).status === "ended") clearInterval(timer);
        } catch (err) {
          /* the page keeps what it shows; the next refresh tries again */
        }
      }, 15000);
    }
  } catch (err) {
    $("page-error").textContent = err.message;
    $("page-error").classList.remove("hidden");
  }
  $("main").setAttribute("aria-busy", "false");
})();
