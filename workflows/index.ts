/** The workflows the ROAD worker runs. */
export { approvalGate } from './approvalGate.js';
