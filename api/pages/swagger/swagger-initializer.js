// Swagger UI on this console's own OpenAPI document, built from its routes (api/openapi.py).
// "Try it out" calls this console from this page's origin, which is always allowed.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/api/swagger/v1/swagger.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    docExpansion: "list",
    tryItOutEnabled: false,
    validatorUrl: null,
  });
});
