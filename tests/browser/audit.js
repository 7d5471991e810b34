// What a page does wrong for readers who depend on it, as a list of sentences (empty when
// nothing): the page's language, labels of form fields, names of buttons and links, text
// contrast (WCAG 2 AA), and, at phone width, content wider than the screen.
// Run by tests/browser/chromium.rs (Browser::audit) through WebDriver's execute script.
const problems = [];
const describe = (e) => {
  let name = e.tagName.toLowerCase();
  if (e.id) name += '#' + e.id;
  else if (e.classList.length) name += '.' + [...e.classList].join('.');
  const text = (e.textContent || '').trim().replace(/\s+/g, ' ').slice(0, 30);
  return text ? `${name} "${text}"` : name;
};
const visible = (e) => {
  const s = getComputedStyle(e);
  return e.getClientRects().length > 0 && s.visibility !== 'hidden' && s.display !== 'none';
};

if (!/^ko\b/.test(document.documentElement.lang)) {
  problems.push(`<html lang> is "${document.documentElement.lang}", not Korean (ko)`);
}
const viewport = document.querySelector('meta[name=viewport]');
if (!viewport || !/width=device-width/.test(viewport.content)) {
  problems.push('no <meta name=viewport content="width=device-width, …">: phones show it zoomed out');
}
if (!document.title.trim()) problems.push('the page has no <title>');

for (const field of document.querySelectorAll('input, textarea, select')) {
  if (field.type === 'hidden' || (!visible(field) && field.type !== 'file')) continue;
  const labelled = field.labels && field.labels.length > 0
    || field.getAttribute('aria-label') || field.getAttribute('aria-labelledby')
    || field.getAttribute('title');
  if (!labelled) problems.push(`${describe(field)} has no label`);
}
for (const control of document.querySelectorAll('button, a[href], [role=button]')) {
  if (!visible(control)) continue;
  const named = control.textContent.trim() || control.getAttribute('aria-label')
    || control.getAttribute('aria-labelledby') || control.getAttribute('title')
    || control.querySelector('img[alt]:not([alt=""]), svg title');
  if (!named) problems.push(`${describe(control)} has no accessible name`);
}

// WCAG relative luminance and contrast, with colours blended over what lies behind them.
const parse = (c) => {
  const m = c.match(/rgba?\(([^)]+)\)/);
  if (!m) return null;
  const [r, g, b, a = 1] = m[1].split(/[ ,\/]+/).filter(Boolean).map(Number);
  return [r, g, b, a];
};
const over = (top, bottom) => top.slice(0, 3).map((v, i) => v * top[3] + bottom[i] * (1 - top[3])).concat(1);
const background = (e) => {
  const layers = [];
  for (let n = e; n; n = n.parentElement) {
    const s = getComputedStyle(n);
    if (s.backgroundImage !== 'none') return null; // a picture or gradient: not judged here
    const c = parse(s.backgroundColor);
    if (c && c[3] > 0) {
      layers.push(c);
      if (c[3] >= 1) break;
    }
  }
  return layers.reverse().reduce((under, layer) => over(layer, under), [255, 255, 255, 1]);
};
const luminance = ([r, g, b]) => {
  const lin = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
};
let low = 0;
for (const e of document.body.querySelectorAll('*')) {
  const own = [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
  if (!own || !visible(e) || e.closest('[disabled], [aria-disabled=true], svg')) continue;
  const s = getComputedStyle(e);
  const bg = background(e);
  const fg = parse(s.color);
  if (!bg || !fg) continue;
  const color = over(fg, bg);
  const [l1, l2] = [luminance(color), luminance(bg)].sort((a, b) => b - a);
  const ratio = (l1 + 0.05) / (l2 + 0.05);
  const size = parseFloat(s.fontSize);
  const large = size >= 24 || (size >= 18.66 && Number(s.fontWeight) >= 700);
  const needed = large ? 3 : 4.5;
  if (ratio < needed && low++ < 8) {
    problems.push(`${describe(e)}: contrast ${ratio.toFixed(2)}:1 (${s.color} on rgb(${bg.slice(0, 3).map(Math.round).join(', ')})), AA needs ${needed}:1`);
  }
}

// The focus ring (WCAG 2.2 non-text contrast, 3:1) of every visible focusable thing against
// the background around it, from the stylesheets' :focus-visible rules (the last rule that
// applies wins, as our stylesheet orders general before specific).
const rings = [];
for (const sheet of document.styleSheets) {
  let rules;
  try { rules = sheet.cssRules; } catch { continue; }
  for (const rule of rules) {
    if (rule.selectorText && rule.selectorText.includes(':focus-visible') && rule.style.outlineColor) {
      rings.push([rule.selectorText.replace(/:focus-visible/g, '').trim() || '*', rule.style.outlineColor]);
    }
  }
}
const probe = document.createElement('span');
document.body.append(probe);
const resolve = (colour) => { probe.style.color = colour; return parse(getComputedStyle(probe).color); };
for (const control of document.querySelectorAll('button, a[href], input, select, textarea, summary')) {
  if (!visible(control)) continue;
  const applies = rings.filter(([sel]) => sel.split(',').some((one) => {
    const scope = one.trim();
    try { return scope === '*' || control.matches(scope) || control.matches(scope + ' *'); } catch { return false; }
  }));
  if (!applies.length) continue;
  const drawn = resolve(applies[applies.length - 1][1]);
  const bg = background(control.parentElement || control);
  if (!drawn || !bg) continue;
  const [l1, l2] = [luminance(over(drawn, bg)), luminance(bg)].sort((a, b) => b - a);
  const ratio = (l1 + 0.05) / (l2 + 0.05);
  if (ratio < 3 && low++ < 8) {
    problems.push(`${describe(control)}: focus ring ${ratio.toFixed(2)}:1 on rgb(${bg.slice(0, 3).map(Math.round).join(', ')}), needs 3:1`);
  }
}
probe.remove();

// On a phone the sticky question box leaves the answer most of the screen.
const ask = document.querySelector('form.ask');
if (ask && visible(ask) && innerWidth <= 480 && ask.getBoundingClientRect().height > innerHeight / 5) {
  problems.push(`at ${innerWidth}×${innerHeight} px form.ask is ${Math.round(ask.getBoundingClientRect().height)} px tall, more than a fifth of the screen`);
}

if (innerWidth <= 480 && document.documentElement.scrollWidth > innerWidth + 1) {
  const wide = [...document.body.querySelectorAll('*')]
    .filter((e) => visible(e) && e.getBoundingClientRect().right > innerWidth + 1)
    .slice(0, 3).map(describe);
  problems.push(`at ${innerWidth} px the page is ${document.documentElement.scrollWidth} px wide (scrolls sideways): ${wide.join(', ')}`);
}
return problems;
