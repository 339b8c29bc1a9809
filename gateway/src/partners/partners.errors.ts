import { defineErrors } from "../http/problem.ts";

export const partnerErrors = defineErrors({
  "partner-not-found": { status: 404, title: "Partner not found" },
  "location-not-found": { status: 404, title: "Location not found" },
  "sector-not-found": { status: 422, title: "No such sector in the maintained list" },
  "sector-exists": { status: 409, title: "A sector with that code exists" },
  "sector-in-use": { status: 409, title: "The sector still has partners" },
  "invalid-transition": { status: 409, title: "The partner cannot move to that status from its current one" },
  "non-compete-conflict": { status: 409, title: "The sector already has an admitted partner" },
  "mid-taken": { status: 409, title: "That merchant id (MID) is already registered" },
  "contract-start-in-past": { status: 422, title: "A contract version cannot start in the past" },
  "contract-start-taken": { status: 409, title: "A contract version already starts at that moment" },
  "contract-not-in-force": { status: 404, title: "No contract version in force at that time" },
  "partner-not-active": { status: 403, title: "The partner is not active in the network" },
});
