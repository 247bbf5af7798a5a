/**
 * Factories by name: what ModelRegistry and DatasetRegistry share. A user's trainer module
 * (`DT_TRAINER_MODULE`) registers its own beside the built-in ones; a name registered again replaces
 * the earlier factory (so a user may override a built-in one).
 */
export class Registry<F> {
  protected readonly factories = new Map<string, F>();

  register(name: string, factory: F): this {
    this.factories.set(name, factory);
    return this;
  }

  has(name: string): boolean {
    return this.factories.has(name);
  }

  /** Every registered name, sorted. */
  names(): string[] {
    return [...this.factories.keys()].sort();
  }
}
