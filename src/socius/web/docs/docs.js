// Starts Swagger UI on this server's own OpenAPI document. Everything it loads comes from
// this server: no CDN, and the spec validator badge (which calls out) is off.
"use strict";
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  tryItOutEnabled: false,
  persistAuthorization: false,
  displayRequestDuration: true,
  filter: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
