// anjeon's pages: the chat's streamed answers and citations, sign-in and sign-out, the
// admin's uploads. Plain DOM, no dependencies; every page works without it except the chat.
'use strict';

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

/** An element with attributes and children (strings become text nodes). */
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k === 'class') e.className = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

/**
 * JSON with passage ids kept exact: they are 64-bit integers, which JavaScript numbers would
 * round; the reviver takes the source text of every `id` number (JSON.parse source access).
 */
const parseExact = (text) =>
  JSON.parse(text, (key, value, context) =>
    key === 'id' && typeof value === 'number' && context && context.source ? context.source : value);

/** The URL path of a document key: each segment encoded. */
const docPath = (key) => '/doc/' + key.split('/').map(encodeURIComponent).join('/');
const passageHref = (c) => `${docPath(c.doc)}?p=${c.id}#p-${c.id}`;

/** The message of an error reply (the API's `{"error": {"message"}}`), or its status. */
async function errorMessage(res) {
  try {
    const body = await res.json();
    if (body && body.error && body.error.message) return body.error.message;
  } catch (_) { /* not JSON */ }
  return `서버가 ${res.status} 오류를 돌려주었습니다`;
}

// ---------------------------------------------------------------- sign-out (every page)
function setupLogout() {
  const button = $('#logout-button');
  if (!button) return;
  button.addEventListener('click', async () => {
    await fetch('/api/logout', { method: 'POST' });
    location.href = '/';
  });
}

// ---------------------------------------------------------------- chat
function setupChat() {
  const form = $('#ask-form');
  const input = $('#question');
  const thread = $('#answer');
  const examples = $('#examples');
  const status = $('#ask-status');
  const panel = $('#passage');
  const layout = $('.chat');
  const history = [];
  let busy = false;

  const showExamples = (show) => { examples.hidden = !show; };

  /** Answer text with its [n] markers as links to the citations. */
  function citedText(text, citations) {
    const byN = new Map(citations.map((c) => [c.n, c]));
    const out = el('div', { class: 'answer-text' });
    let at = 0;
    for (const m of text.matchAll(/\[(\d+)\]/g)) {
      const c = byN.get(Number(m[1]));
      if (!c) continue;
      out.append(text.slice(at, m.index));
      out.append(citeLink(c));
      at = m.index + m[0].length;
    }
    out.append(text.slice(at));
    return out;
  }

  /** A citation's document title and place, each once (a letter's locator is its title). */
  function sourceLabel(c) {
    return c.locator && c.locator !== c.title ? `${c.title} ${c.locator}` : c.title;
  }

  /** Officials and admins see storage keys; citizens see titles only. */
  const official = () => ($('#current-role')?.dataset.role || 'public') !== 'public';

  function citeLink(c, label) {
    const a = el('a', {
      class: 'cite', href: passageHref(c), dataset: { n: String(c.n) },
      title: `출처 ${c.n}: ${sourceLabel(c)}`,
    }, label || `[${c.n}]`);
    a.citation = c;
    return a;
  }

  /** Index range of `quote` in `text`, ignoring differences in whitespace. */
  function findQuote(text, quote) {
    const exact = text.indexOf(quote);
    if (exact >= 0) return [exact, exact + quote.length];
    const positions = [];
    let squeezed = '';
    for (let i = 0; i < text.length; i++) {
      if (!/\s/.test(text[i])) { squeezed += text[i]; positions.push(i); }
    }
    const q = quote.replace(/\s+/g, '');
    const at = q ? squeezed.indexOf(q) : -1;
    if (at < 0) return null;
    return [positions[at], positions[at + q.length - 1] + 1];
  }

  function openPassage(c, opener) {
    $('#passage-title').textContent = c.title;
    const place = [official() ? c.doc : '', c.locator !== c.title ? c.locator : ''].filter(Boolean);
    $('#passage-meta').textContent = place.join(' · ');
    $('#passage-meta').hidden = place.length === 0;
    const body = $('#passage-text');
    body.replaceChildren();
    const range = c.quote ? findQuote(c.text, c.quote) : null;
    if (range) {
      body.append(c.text.slice(0, range[0]), el('mark', {}, c.text.slice(range[0], range[1])), c.text.slice(range[1]));
    } else {
      body.append(c.text);
    }
    $('#source-link').href = passageHref(c);
    panel.hidden = false;
    panel.opener = opener;
    layout.classList.add('with-passage');
    panel.focus({ preventScroll: window.innerWidth > 896 });
    if (window.innerWidth <= 896) panel.scrollIntoView({ block: 'start' });
  }

  $('#passage-close').addEventListener('click', () => {
    panel.hidden = true;
    layout.classList.remove('with-passage');
    if (panel.opener) panel.opener.focus();
  });

  thread.addEventListener('click', (e) => {
    const a = e.target.closest('a.cite');
    if (!a || !a.citation) return;
    e.preventDefault();
    openPassage(a.citation, a);
  });

  function feedbackBox(question, answer) {
    const box = el('div', { class: 'feedback-box', role: 'group', 'aria-label': '이 답변에 대한 의견' });
    const id = `comment-${Math.random().toString(36).slice(2)}`;
    const comment = el('input', { id, type: 'text', maxlength: '2000', placeholder: '더 하실 말씀 (선택)' });
    const said = el('p', { class: 'status-line', role: 'status' });
    const kinds = [['helpful', '도움이 됐어요'], ['wrong', '답이 틀렸어요'], ['bad-citation', '출처가 맞지 않아요']];
    const buttons = kinds.map(([kind, label]) => {
      const b = el('button', { type: 'button', class: 'feedback', dataset: { kind }, 'aria-pressed': 'false' }, label);
      b.addEventListener('click', async () => {
        const res = await fetch('/api/feedback', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({
            kind, comment: comment.value, question, answer: answer.answer,
            citations: answer.citations.map(({ n, doc, locator, id: pid, quote }) => ({ n, doc, locator, id: pid, quote })),
          }),
        });
        if (res.ok) {
          buttons.forEach((x) => x.setAttribute('aria-pressed', String(x === b)));
          said.textContent = '의견을 보냈습니다. 고맙습니다.';
        } else {
          said.textContent = `의견을 보내지 못했습니다: ${await errorMessage(res)}`;
        }
      });
      return b;
    });
    box.append(...buttons,
      el('div', { class: 'comment' }, el('label', { for: id }, '의견 (선택)'), comment), said);
    return box;
  }

  function renderAnswer(body, question, answer) {
    body.replaceChildren();
    if (answer.refused) {
      const refusal = el('div', { class: 'refusal' });
      const phrase = '찾은 문서에서 답을 확인할 수 없습니다';
      if (!answer.answer.includes(phrase)) refusal.append(el('p', { class: 'refusal-title' }, phrase));
      // The text names the closest passages ([n] title); the list adds each one's closest
      // sentence, so every passage is named once and opens from its number.
      refusal.append(citedText(answer.answer, answer.citations));
      if (answer.citations.length) {
        refusal.append(el('p', { class: 'refusal-title' }, '가장 가까운 문장'),
          el('ol', { class: 'sources closest' }, answer.citations.map((c) =>
            el('li', { value: String(c.n) }, citeLink(c, c.quote || sourceLabel(c))))));
      }
      body.append(refusal);
    } else {
      body.append(citedText(answer.answer, answer.citations));
      if (answer.citations.length) {
        body.append(el('p', { class: 'hint' }, '출처'),
          el('ol', { class: 'sources' }, answer.citations.map((c) =>
            el('li', { value: String(c.n) }, citeLink(c, sourceLabel(c)),
              official() ? ` (${c.doc})` : ''))));
      }
    }
    body.append(feedbackBox(question, answer));
  }

  /** Reads an SSE response, calling `on(event, data)` per event. */
  async function readEvents(res, on) {
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
      const blocks = buffer.split(/\r?\n\r?\n/);
      buffer = blocks.pop();
      for (const block of blocks) {
        let event = 'message';
        const data = [];
        for (const line of block.split(/\r?\n/)) {
          if (line.startsWith('event:')) event = line.slice(6).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
        }
        if (data.length) on(event, parseExact(data.join('\n')));
      }
      if (done) return;
    }
  }

  async function ask(question) {
    question = question.trim();
    if (!question || busy) return;
    busy = true;
    $('#ask-button').disabled = true;
    showExamples(false);
    const body = el('div', { class: 'a', 'aria-busy': 'true' });
    const streamed = el('div', { class: 'answer-text' });
    body.append(streamed);
    const turn = el('article', { class: 'turn' }, el('p', { class: 'q' }, question), body);
    thread.append(turn);
    status.textContent = '문서에서 답을 찾고 있습니다…';
    input.value = '';
    let final = null;
    try {
      const res = await fetch('/api/ask', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream' },
        body: JSON.stringify({ question, history: history.slice(-6), stream: true }),
      });
      if (!res.ok) throw new Error(await errorMessage(res));
      await readEvents(res, (event, data) => {
        if (event === 'delta') streamed.append(data.text);
        else if (event === 'answer') final = data;
        else if (event === 'error') throw new Error(data.error ? data.error.message : '알 수 없는 오류');
      });
      if (!final) throw new Error('답변이 끝나지 않았습니다');
      renderAnswer(body, question, final);
      history.push({ question, answer: final.answer });
      status.textContent = final.refused ? '문서에서 답을 찾지 못했습니다.' : '답변을 마쳤습니다.';
    } catch (err) {
      body.append(el('p', { class: 'error-text' }, `답변하지 못했습니다: ${err.message}`));
      status.textContent = '';
    } finally {
      body.removeAttribute('aria-busy');
      busy = false;
      $('#ask-button').disabled = false;
    }
  }

  form.addEventListener('submit', (e) => { e.preventDefault(); ask(input.value); });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); ask(input.value); }
  });
  $$('.example-question').forEach((b) => b.addEventListener('click', () => { input.value = b.textContent; ask(b.textContent); }));
  $('#new-conversation').addEventListener('click', () => {
    history.length = 0;
    thread.replaceChildren();
    panel.hidden = true;
    layout.classList.remove('with-passage');
    status.textContent = '새 대화를 시작합니다.';
    showExamples(true);
    input.focus();
  });
  // A question in the address (/?question=…) is asked at once: links and the no-script form.
  const asked = new URLSearchParams(location.search).get('question');
  if (asked) ask(asked);
}

// ---------------------------------------------------------------- sign-in
function setupLogin() {
  const form = $('#login-form');
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const error = $('#login-error');
    error.textContent = '';
    const res = await fetch('/api/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ token: $('#token').value.trim() }),
    });
    if (res.ok) {
      location.href = form.dataset.next || '/';
    } else {
      error.textContent = res.status === 401 ? '토큰이 올바르지 않습니다.' : await errorMessage(res);
    }
  });
}

// ---------------------------------------------------------------- admin
const STATES = {
  queued: '대기', running: '처리 중', indexed: '저장 중', done: '완료', unchanged: '완료 (변경 없음)', failed: '실패',
};

function setupAdmin() {
  const zone = $('#upload-zone');
  const input = $('#upload-input');
  const progress = $('#upload-progress');
  const status = $('#documents-status');

  function row(job, item) {
    const id = `job-${job}-${item.key}`;
    let li = progress.querySelector(`[data-id="${CSS.escape(id)}"]`);
    if (!li) {
      li = el('li', { dataset: { id } });
      progress.append(li);
    }
    li.dataset.state = item.state;
    li.textContent = `${item.name} — ${STATES[item.state] || item.state}`
      + (item.passages ? ` (구절 ${item.passages}개)` : '') + (item.error ? `: ${item.error}` : '');
  }

  async function watch(job) {
    for (;;) {
      const res = await fetch(`/api/admin/jobs/${job}`);
      if (!res.ok) {
        progress.append(el('li', { dataset: { state: 'failed' } }, `작업 ${job}: ${await errorMessage(res)}`));
        return;
      }
      const j = await res.json();
      j.items.forEach((item) => row(job, item));
      if (j.state === 'done' || j.state === 'failed') {
        if (j.error) progress.append(el('li', { dataset: { state: 'failed' } }, j.error));
        status.textContent = (await refreshDocuments())
          ? '작업이 끝났습니다. 문서 목록을 새로 고쳤습니다.'
          : '작업이 끝났습니다. 목록을 새로 보려면 페이지를 새로 고치세요.';
        return;
      }
      await new Promise((r) => setTimeout(r, 700));
    }
  }

  async function upload(files) {
    if (!files.length) return;
    const data = new FormData();
    data.append('access', $('#upload-access').value);
    for (const f of files) data.append('files', f, f.name);
    const pending = el('li', { dataset: { state: 'queued' } }, `${files.length}개 파일을 올리는 중…`);
    progress.append(pending);
    const res = await fetch('/api/admin/documents', { method: 'POST', body: data });
    pending.remove();
    if (!res.ok) {
      progress.append(el('li', { dataset: { state: 'failed' } }, `올리지 못했습니다 (실패): ${await errorMessage(res)}`));
      return;
    }
    const { job } = await res.json();
    await watch(job);
  }

  input.addEventListener('change', () => { upload([...input.files]); input.value = ''; });
  zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('dragging'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('dragging'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('dragging');
    upload([...e.dataTransfer.files]);
  });
  $('#upload-form').addEventListener('submit', (e) => e.preventDefault());

  /** The document list as the server renders it now (after an ingest or re-ingest). */
  async function refreshDocuments() {
    const res = await fetch('/admin');
    if (!res.ok) return false;
    const fresh = new DOMParser().parseFromString(await res.text(), 'text/html');
    for (const sel of ['#documents-heading', '#documents tbody']) {
      const now = $(sel);
      const next = fresh.querySelector(sel);
      if (!now || !next) return false;
      now.replaceWith(document.adoptNode(next));
    }
    bindRows();
    return true;
  }

  function bindRows() {
    $$('#documents button.reingest').forEach((b) => b.addEventListener('click', async () => {
      const res = await fetch(`/api/admin/documents/${b.dataset.key.split('/').map(encodeURIComponent).join('/')}/reingest`, { method: 'POST' });
      if (!res.ok) { status.textContent = await errorMessage(res); return; }
      const { job } = await res.json();
      status.textContent = `${b.dataset.key}을(를) 다시 색인합니다.`;
      await watch(job);
    }));
    $$('#documents button.delete').forEach((b) => b.addEventListener('click', async () => {
      if (!confirm(`${b.dataset.key}을(를) 색인에서 지울까요?`)) return;
      const res = await fetch(`/api/admin/documents/${b.dataset.key.split('/').map(encodeURIComponent).join('/')}`, { method: 'DELETE' });
      if (!res.ok) { status.textContent = await errorMessage(res); return; }
      const { deleted } = await res.json();
      deleted.forEach((k) => { const tr = $(`#documents tr[data-key="${CSS.escape(k)}"]`); if (tr) tr.remove(); });
      status.textContent = `${deleted.join(', ')}을(를) 지웠습니다.`;
    }));
  }
  bindRows();
}

/** On a phone, the filters fold away once there are results, so the results come first. */
function setupSearch() {
  const filters = $('#search-filters');
  if (!filters) return;
  const narrow = matchMedia('(max-width: 30rem)');
  const fit = () => { filters.open = !(narrow.matches && $('.results-layout')); };
  fit();
  narrow.addEventListener('change', fit);
}

document.addEventListener('DOMContentLoaded', () => {
  setupLogout();
  const page = document.body.dataset.page;
  if (page === 'chat') setupChat();
  else if (page === 'search') setupSearch();
  else if (page === 'login') setupLogin();
  else if (page === 'admin') setupAdmin();
});
