"""How to drive the viewer from a headless chromium: software WebGL (SwiftShader), no network.

Shared by the demo benchmark and the browser end-to-end test so both run the browser the same way.
"""

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-background-networking",
    "--no-first-run",
]
