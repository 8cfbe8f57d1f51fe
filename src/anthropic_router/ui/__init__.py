"""The status page (`GET /ui`): page.py serves it, data.py and stats.py feed it, static/
holds its script, styles and the vendored uPlot charting library."""
