/** The workflows the ROAD worker runs. */
export { approvalGate } from './approvalGate.js';
export { followupTask } from './followupTask.js';
export { replayCampaign } from './replayCampaign.js';
export { improvementLoop } from './improvementLoop.js';
export { deliverNotification } from './notification.js';
