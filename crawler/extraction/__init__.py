"""HTML → :class:`~crawler.article.ExtractedArticle`: metadata, lead and main body of one page.

Where each part comes from, first source that has it wins:

- title: JSON-LD ``headline``, the profile's title selectors, ``og:title`` (minus the site's
  suffix), the page's ``h1``, ``<title>``;
- authors, dates, lead (``description``), canonical URL: JSON-LD ``NewsArticle``/``Article``
  (also inside ``@graph`` and lists), then ``<meta>`` tags, then the markup;
- body: the profile's body selectors with its noise rules when the profile has them and they
  match, otherwise trafilatura on the page with generic noise (navigation, share bars,
  related lists, newsletter boxes, captions, comment widgets) pruned first.

The modules, in the order a page goes through them: :mod:`~crawler.extraction.parsing` (bytes
→ tree), :mod:`~crawler.extraction.json_ld` and :mod:`~crawler.extraction.metadata` (title,
authors, dates, canonical URL), :mod:`~crawler.extraction.lead`,
:mod:`~crawler.extraction.body`, and :mod:`~crawler.extraction.extractor`, which puts them
together (``extract``); :mod:`~crawler.extraction.multipage` finds the view of the whole
article when a page shows only part of it. :mod:`~crawler.extraction.text` holds what they
share. This package imports none of them: callers import from where a name lives.
"""
