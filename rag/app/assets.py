"""The page's CSS and the one script (run by the sources panel's `js_on_load`).

The script does what needs no server: a click on `[n]` shows that answer's sources and
highlights the card; a click on an answer shows its sources; "Open article" asks the server
(`server.open_article`) for the article view, which is escaped HTML, and scrolls the first
highlighted quote into view.
"""

from __future__ import annotations

CSS = """
.rag-sources { font-size: 0.95rem; line-height: 1.5; position: relative; }
.rag-empty, .rag-question { color: var(--body-text-color-subdued); margin-bottom: 0.6rem; }
.rag-turn[hidden], .rag-article[hidden] { display: none !important; }
.rag-source { border: 1px solid var(--border-color-primary); border-radius: 8px;
  padding: 0.6rem 0.8rem; margin-bottom: 0.7rem; background: var(--block-background-fill);
  scroll-margin: 1rem; transition: box-shadow 0.2s, border-color 0.2s; }
.rag-source.rag-hl { border-color: var(--color-accent); box-shadow: 0 0 0 3px #fbbf24; }
.rag-head { font-weight: 600; }
.rag-n { color: var(--color-accent); margin-right: 0.2rem; }
.rag-meta { font-size: 0.85rem; color: var(--body-text-color-subdued); margin: 0.15rem 0 0.4rem;
  overflow-wrap: anywhere; }
.rag-passage { white-space: pre-wrap; border-left: 3px solid var(--border-color-primary);
  padding-left: 0.6rem; overflow-wrap: anywhere; }
.rag-passage mark, .rag-article-text mark { background: #fde68a; color: #1f2937;
  padding: 0 2px; border-radius: 2px; }
.rag-sup { color: var(--color-accent); font-weight: 600; margin-left: 1px; }
.rag-gap { border: 0; border-top: 1px dashed var(--border-color-primary); margin: 0.4rem 0; }
.rag-actions { margin-top: 0.4rem; }
.rag-open, .rag-close { font-size: 0.85rem; color: var(--color-accent); background: none;
  border: 1px solid var(--border-color-primary); border-radius: 6px; padding: 0.1rem 0.6rem;
  cursor: pointer; }
.rag-article-text { white-space: pre-wrap; overflow-wrap: anywhere; }
.rag-article-bar { position: sticky; top: 0; background: var(--background-fill-primary);
  padding: 0.3rem 0; z-index: 1; }
.rag-abstained, .rag-stale { background: #fef3c7; color: #78350f; border-radius: 8px;
  padding: 0.5rem 0.8rem; margin-bottom: 0.7rem; }
.rag-error { background: #fee2e2; color: #7f1d1d; border-radius: 8px; padding: 0.5rem 0.8rem; }
.rag-note { font-size: 0.85rem; color: var(--body-text-color-subdued); }
.rag-articles { max-height: 420px; overflow-y: auto; }
.rag-art-list { list-style: none; margin: 0.3rem 0 0; padding: 0; }
.rag-art-card { border: 1px solid var(--border-color-primary); border-radius: 8px;
  padding: 0.45rem 0.7rem; margin-bottom: 0.45rem; background: var(--block-background-fill); }
.rag-art-title { font-weight: 600; overflow-wrap: anywhere; }
.rag-art-meta { font-size: 0.85rem; color: var(--body-text-color-subdued); overflow-wrap: anywhere; }
.rag-working { display: flex; align-items: center; gap: 0.6rem; padding: 0.5rem 0.8rem;
  margin-bottom: 0.7rem; border-radius: 8px; background: var(--block-background-fill);
  border: 1px solid var(--border-color-primary); }
.rag-spinner { width: 1rem; height: 1rem; border-radius: 50%; flex: none;
  border: 2px solid var(--border-color-primary); border-top-color: var(--color-accent);
  animation: rag-spin 0.8s linear infinite; }
@keyframes rag-spin { to { transform: rotate(360deg); } }
.rag-chat [data-testid="bot"] { cursor: pointer; }
/* The chat's own bin icon floats over the bubbles and would clear the screen but not the
   saved conversation: "Delete" does that. */
#rag-chat button[aria-label="Clear"] { display: none; }
.rag-chat .rag-selected { outline: 2px solid var(--color-accent); outline-offset: 2px; }
#rag-status { font-size: 0.9rem; color: var(--body-text-color-subdued); }
#rag-sources-panel { max-height: 640px; overflow-y: auto; }
"""

# `element` is the sources panel; `server.open_article` is `Service.article_view`.
JS = r"""
const bots = () => [...document.querySelectorAll('.rag-chat [data-testid="bot"]')];
let shown = null;  // the answer whose sources are on screen (null: the last)
function showTurn(i) {
  const sections = [...element.querySelectorAll('section.rag-turn')];
  if (!sections.length) return;
  const want = i === null ? sections.length - 1 : Number(i);
  shown = i;
  sections.forEach(s => { s.hidden = Number(s.dataset.turn) !== want; });
  const view = element.querySelector('.rag-article');
  if (view) view.hidden = true;
  bots().forEach((b, j) => b.classList.toggle('rag-selected', j === want));
}
function flash(card) {
  element.querySelectorAll('.rag-hl').forEach(c => c.classList.remove('rag-hl'));
  card.classList.add('rag-hl');
  card.scrollIntoView({block: 'nearest'});
}
document.addEventListener('click', ev => {
  const link = ev.target.closest('a[href^="#rag-cite-"]');
  if (link) {
    ev.preventDefault();
    ev.stopPropagation();
    const m = link.getAttribute('href').match(/rag-cite-(\d+)-(\d+)/);
    if (!m) return;
    showTurn(m[1]);
    const cards = element.querySelectorAll(`section[data-turn="${m[1]}"] .rag-source`);
    const card = [...cards].find(c => c.dataset.cites.split(' ').includes(m[2]));
    if (card) flash(card);
    return;
  }
  const bot = ev.target.closest('.rag-chat [data-testid="bot"]');
  if (bot && !ev.target.closest('button')) showTurn(bots().indexOf(bot));
}, true);
element.addEventListener('click', async ev => {
  const view = element.querySelector('.rag-article');
  const open = ev.target.closest('.rag-open');
  if (open && view) {
    const turn = open.closest('section.rag-turn');
    view.innerHTML = '<div class="rag-working"><span class="rag-spinner"></span>' +
                     'Opening the article…</div>';
    element.querySelectorAll('section.rag-turn').forEach(s => { s.hidden = true; });
    view.dataset.turn = turn ? turn.dataset.turn : '';
    view.hidden = false;
    view.innerHTML = await server.open_article(
      {article: open.dataset.article, spans: open.dataset.spans});
    const mark = view.querySelector('mark');
    (mark || view).scrollIntoView({block: 'center'});
  } else if (ev.target.closest('.rag-close') && view) {
    showTurn(view.dataset.turn === '' ? null : view.dataset.turn);
  }
});
watch('value', () => { shown = null; showTurn(null); });
"""
