// Swagger UI for /docs, from the files vendored under /vendor/swagger-ui/ (no CDN: it
// works without internet). No online validator badge either.
window.ui = window.SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  presets: [window.SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
