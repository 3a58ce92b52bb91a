// Time-series charts (uPlot, canvas): raw and deduplicated lines per minute, alert start markers,
// and a click on any point reports that minute (the drill-down to its posts).
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

const RAW = "#2563eb";
const DEDUP = "#f97316";
const MARK = "#dc2626";

function markers(getMarks) {
  return {
    hooks: {
      draw: [
        (u) => {
          const { ctx, bbox } = u;
          ctx.save();
          ctx.strokeStyle = MARK;
          ctx.setLineDash([6, 4]);
          ctx.lineWidth = 2 * devicePixelRatio;
          for (const seconds of getMarks()) {
            const x = u.valToPos(seconds, "x", true);
            if (x < bbox.left || x > bbox.left + bbox.width) continue;
            ctx.beginPath();
            ctx.moveTo(x, bbox.top);
            ctx.lineTo(x, bbox.top + bbox.height);
            ctx.stroke();
          }
          ctx.restore();
        },
      ],
    },
  };
}

function clicks(onPoint) {
  return {
    hooks: {
      ready: [
        (u) => {
          u.over.addEventListener("click", () => {
            const idx = u.cursor.idx;
            if (idx !== null && idx !== undefined) onPoint(idx);
          });
        },
      ],
    },
  };
}

export class MinuteChart {
  // labels: () => [rawLabel, dedupLabel]; percent: y values are shares 0..1.
  constructor(el, { percent = false, labels, onPoint, getMarks }) {
    this.el = el;
    this.percent = percent;
    this.labels = labels;
    const [rawLabel, dedupLabel] = labels();
    const value = (_u, v) => (v == null ? "–" : percent ? `${(v * 100).toFixed(1)}%` : v.toLocaleString());
    const opts = {
      width: Math.max(el.clientWidth, 300),
      height: 220,
      plugins: [markers(getMarks), clicks(onPoint)],
      cursor: { points: { size: 8 } },
      scales: { x: { time: true }, y: percent ? { range: [0, 1] } : { range: (_u, _min, max) => [0, Math.max(max, 1)] } },
      axes: [
        {},
        { values: (_u, ticks) => ticks.map((v) => (percent ? `${Math.round(v * 100)}%` : v.toLocaleString())), size: 56 },
      ],
      series: [
        {},
        { label: rawLabel, stroke: RAW, width: 2, points: { show: true, size: 4 }, value },
        { label: dedupLabel, stroke: DEDUP, width: 2, dash: [5, 3], points: { show: true, size: 4 }, value },
      ],
    };
    this.plot = new uPlot(opts, [[], [], []], el);
    new ResizeObserver(() => this.plot.setSize({ width: Math.max(el.clientWidth, 300), height: 220 })).observe(el);
  }

  setData(xs, raw, dedup) {
    this.plot.setData([xs, raw, dedup]);
  }

  relabel() {
    const [rawLabel, dedupLabel] = this.labels();
    const legend = this.el.querySelectorAll(".u-legend .u-series .u-label");
    if (legend.length >= 3) {
      legend[1].textContent = rawLabel;
      legend[2].textContent = dedupLabel;
    }
  }

  redraw() {
    this.plot.redraw(false, false);
  }
}
