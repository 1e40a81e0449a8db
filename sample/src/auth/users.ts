/** The sample's fixed users. A real app keeps them in a database, with hashed passwords. */
export interface User {
  id: string;
  email: string;
  name: string;
  password: string;
  roles: string[];
}

export const USERS: User[] = [
  { id: 'u-alice', email: 'alice@example.com', name: 'Alice', password: 'wonderland', roles: ['user'] },
  { id: 'u-bob', email: 'bob@example.com', name: 'Bob', password: 'builder', roles: ['user'] },
  { id: 'u-carol', email: 'carol@example.com', name: 'Carol', password: 'admin-carol', roles: ['user', 'admin'] },
];

/** What guards put on `request.user`: what nestjs-audit's default actor resolver reads. */
export interface RequestUser {
  id: string;
  email: string;
  roles: string[];
}
