import { defineErrors } from "../http/problem.ts";

export const webhookErrors = defineErrors({
  "webhook-endpoint-not-found": { status: 404, title: "Webhook endpoint not found" },
  "webhook-delivery-not-found": { status: 404, title: "Webhook delivery not found" },
  "destination-refused": { status: 422, title: "The hub may not send webhooks to this URL" },
  "too-many-endpoints": { status: 409, title: "The partner has the most webhook endpoints allowed" },
  "delivery-pending": { status: 409, title: "The delivery is still being retried" },
  "endpoint-disabled": { status: 409, title: "The webhook endpoint is disabled" },
});
