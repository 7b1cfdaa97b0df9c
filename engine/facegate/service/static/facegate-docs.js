// The interactive API page: Swagger UI (vendored, Apache-2.0, see swagger-ui-LICENSE) on this
// server's /openapi.json. No request leaves for anywhere else: the online validator is off.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    tryItOutEnabled: false,
    persistAuthorization: false,
  });
});
