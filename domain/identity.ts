/** Reviewer and author identities compare case-insensitively and without surrounding blanks (`Alice@X.io ` = `alice@x.io`). */
export function normalizeIdentity(identity: string): string {
  return identity.trim().toLowerCase();
}
