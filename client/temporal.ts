/** Temporal client helpers shared by the CLI and the API. */
import { Client, Connection } from '@temporalio/client';
import type { RoadConfig } from '../domain/config.js';

export async function connectClient(config: RoadConfig): Promise<Client> {
  let connection: Connection;
  try {
    connection = await Connection.connect({ address: config.temporal.address, connectTimeout: '5 seconds' });
  } catch (error) {
    throw new Error(
      `cannot reach Temporal at ${config.temporal.address} (${(error as Error).message}). Start it with \`npm start\`, or set TEMPORAL_ADDRESS.`,
      { cause: error },
    );
  }
  return new Client({ connection, namespace: config.temporal.namespace });
}

export const uiWorkflowUrl = (uiBase: string, namespace: string, workflowId: string): string =>
  `${uiBase.replace(/\/$/, '')}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`;
