// Small inline-SVG charts (no library): bars for counts and amounts by day.
const NS = 'http://www.w3.org/2000/svg';

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

// points: [{label, value}]; format(value) -> text for the tooltip and the max tick.
export function barChart(points, format = String) {
  const width = 420, height = 160, left = 44, bottom = 20, top = 8;
  const max = Math.max(1, ...points.map((p) => p.value));
  const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img' });
  const plotW = width - left - 4, plotH = height - top - bottom;
  root.append(svg('line', { class: 'axis', x1: left, y1: top + plotH, x2: width - 4, y2: top + plotH }));
  root.append(svg('text', { class: 'tick', x: left - 4, y: top + 8, 'text-anchor': 'end' }, format(max)));
  root.append(svg('text', { class: 'tick', x: left - 4, y: top + plotH, 'text-anchor': 'end' }, '0'));
  const step = plotW / Math.max(1, points.length);
  points.forEach((p, i) => {
    const barH = (p.value / max) * plotH;
    const bar = svg('rect', { class: 'bar', x: left + i * step + step * 0.15, y: top + plotH - barH,
      width: step * 0.7, height: Math.max(barH, p.value ? 1 : 0) });
    bar.append(svg('title', {}, `${p.label}: ${format(p.value)}`));
    root.append(bar);
    if (points.length <= 10 || i % Math.ceil(points.length / 8) === 0) {
      root.append(svg('text', { class: 'tick', x: left + i * step + step / 2, y: height - 6,
        'text-anchor': 'middle' }, p.label.slice(5)));
    }
  });
  return root;
}
