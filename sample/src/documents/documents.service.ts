import { ForbiddenException, Injectable, NotFoundException } from '@nestjs/common';
import { Audit } from 'nestjs-audit';
import type { RequestUser } from '../auth/users.js';

export interface Document {
  id: string;
  title: string;
  body: string;
  owner_id: string;
  shared_with: { user_email: string; permission: 'read' | 'write' }[];
}

@Injectable()
export class DocumentsService {
  private readonly documents = new Map<string, Document>();
  private next = 1;

  create(owner: RequestUser, title: string, body: string): Document {
    const document: Document = { id: `doc-${this.next++}`, title, body, owner_id: owner.id, shared_with: [] };
    this.documents.set(document.id, document);
    return document;
  }

  get(id: string): Document {
    const document = this.documents.get(id);
    if (!document) throw new NotFoundException(`No document ${id}`);
    return document;
  }

  update(user: RequestUser, id: string, changes: Partial<Pick<Document, 'title' | 'body'>>): Document {
    const document = this.ownedBy(user, id);
    Object.assign(document, changes);
    return document;
  }

  /**
   * The guide's service-layer pattern, without the try/catch: the decorator
   * records success or failure and the actor comes from the request context,
   * however deep below the controller this runs.
   */
  @Audit('document.share', 'document', {
    resourceId: ({ args: [, id] }) => id as string,
    metadata: ({ args: [, , recipient, permission] }) => ({ shared_with: recipient, permission, expires_at: null }),
  })
  async shareDocument(user: RequestUser, id: string, recipient: string, permission: 'read' | 'write'): Promise<Document> {
    const document = this.ownedBy(user, id);
    await Promise.resolve(); // a real store would await a write here
    document.shared_with.push({ user_email: recipient, permission });
    return document;
  }

  remove(user: RequestUser, id: string): Document {
    const document = this.get(id);
    if (document.owner_id !== user.id && !user.roles.includes('admin')) {
      throw new ForbiddenException(`Only the owner or an admin may delete ${id}`);
    }
    this.documents.delete(id);
    return document;
  }

  visibleTo(user: RequestUser): Document[] {
    return [...this.documents.values()].filter(
      (doc) => doc.owner_id === user.id || doc.shared_with.some((share) => share.user_email === user.email),
    );
  }

  private ownedBy(user: RequestUser, id: string): Document {
    const document = this.get(id);
    if (document.owner_id !== user.id) throw new ForbiddenException(`Only the owner may change ${id}`);
    return document;
  }
}
